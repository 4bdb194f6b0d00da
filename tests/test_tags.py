"""What a tag names: its layer in the model's config by whole name tokens where the writer flattened the
variable path, and what its parameter is."""

from __future__ import annotations

import json

import pytest

from analyzer.architecture import read_architecture
from analyzer.tags import is_weight_histogram, layer_path

CONFIG = json.dumps(
    {
        "class_name": "Sequential",
        "config": {
            "name": "sequential_4",
            "layers": [
                {"class_name": "Dense", "config": {"name": name, "activation": "sigmoid"}}
                for name in ("dense_1", "dense_17", "dense_170")
            ],
        },
    }
)


@pytest.mark.parametrize(
    "tag, layer",
    [
        ("sequential_4_dense_17_kernel_grads", "dense_17"),  # the seed's flattened path
        ("sequential_4_dense_1_kernel_grads", "dense_1"),
        ("dense_17/kernel:0_grads", "dense_17"),
        ("model/dense_170/kernel", "dense_170"),  # never dense_17 inside dense_170
        ("sequential_4_dense_2_kernel_grads", None),  # no such layer: unmapped, listed
    ],
)
def test_a_flattened_tag_maps_to_its_layer_by_whole_name_tokens(tag, layer):
    architecture = read_architecture(CONFIG, [tag], {})
    found = architecture.layer_of(tag)
    if layer is None:
        assert architecture.unmapped == [tag]
    else:
        assert found is not None and found.name == layer and found.activation == "sigmoid"


def test_a_tag_two_layers_fit_equally_stays_unmapped():
    config = json.dumps(
        {
            "class_name": "Sequential",
            "config": {
                "name": "m",
                "layers": [
                    {"class_name": "Dense", "config": {"name": "a_b"}},
                    {"class_name": "Dense", "config": {"name": "b_c"}},
                ],
            },
        }
    )
    assert read_architecture(config, ["x_a_b_c_kernel"], {}).unmapped == ["x_a_b_c_kernel"]


@pytest.mark.parametrize(
    "tag, weights, layer",
    [
        ("h1/weights", True, "h1"),
        ("h1/biases", True, "h1"),
        ("logits/weights", True, "logits"),
        ("dense/kernel_0/histogram", True, "dense"),
        ("grad/h1/weights", False, "h1"),
    ],
)
def test_weight_tags_as_people_write_them(tag, weights, layer):
    assert is_weight_histogram(tag) is weights and layer_path(tag) == layer


def test_a_bias_is_told_by_its_parameter_name_whoever_wrote_it():
    from analyzer.tags import is_bias

    for tag in (
        "gradients/sequential/dense_1/bias",
        "grad/head.bias",
        "head.bias.grad",
        "h1/biases",
        "dense/bias_0",
    ):
        assert is_bias(tag), tag
    for tag in ("grad/lstm.bias_ih_l0", "grad/bias_layer.weight", "gradients/dense/kernel", "grad/norm.beta"):
        assert not is_bias(tag), tag
