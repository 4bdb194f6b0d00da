"""The model behind a run: its layers (name, class, activation), and which tag belongs to which.

Keras's TensorBoard callback, and gradaudit's, log the model's JSON config under the tag ``keras``
(Keras 3 and tf.keras 2 formats; gradaudit's callback logs a subclassed model's layer list in the
same shape). Where a run has no config (PyTorch), the layers come from the parameter names, with no
class or activation, and the report says so.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from .tags import is_bias, layer_path

# Where the layers came from.
FROM_CONFIG = "the model config the run logged"


FROM_PARAMETER_NAMES = "parameter names (the run logged no model config)"


# Activations whose derivative is at most 0.25 (sigmoid) or 1 near zero only (tanh): stacked, they
# shrink the backward signal.
SATURATING = frozenset({"sigmoid", "tanh", "hard_sigmoid", "softsign", "hard_tanh"})


# Activations whose units die: zero output and zero gradient for every negative input (relu6 and
# ThresholdedReLU are read as relu).
DYING = frozenset({"relu"})


_RECURRENT = frozenset({"LSTM", "GRU", "SimpleRNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "RNN"})


_GATED_RECURRENT = frozenset({"LSTM", "GRU", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"})


# Layers that are an activation of the layer before them.
_ACTIVATION_LAYERS = {
    "ReLU": "relu",
    "LeakyReLU": "leaky_relu",
    "ELU": "elu",
    "PReLU": "prelu",
    "Softmax": "softmax",
    "ThresholdedReLU": "relu",
    # PyTorch's activation modules, as gradaudit's PyTorch logger lists them
    "ReLU6": "relu",
    "Tanh": "tanh",
    "Sigmoid": "sigmoid",
    "GELU": "gelu",
    "SiLU": "silu",
    "Mish": "mish",
    "SELU": "selu",
    "CELU": "celu",
    "Hardtanh": "hard_tanh",
    "Hardsigmoid": "hard_sigmoid",
    "Hardswish": "hard_swish",
    "Softplus": "softplus",
    "Softsign": "softsign",
    "LogSoftmax": "softmax",
}


# Layers an activation layer looks through to the layer it activates: they change no sign.
_PASS_THROUGH = re.compile(
    r"Normalization|Norm(\dd)?$|Dropout|GaussianNoise|ActivityRegularization|Reshape|Flatten|Identity"
)


_RESIDUAL = frozenset({"Add", "Residual"})


_MODELS = frozenset({"Sequential", "Functional", "Model"})


@dataclass
class ModelLayer:
    name: str  # as the model names it ("dense_1"; PyTorch: "encoder.layers.1.linear1")
    path: str  # with the names of the models it is nested in ("block/dense")
    class_name: str  # "Dense"; "" where the run does not say
    activation: str  # applied to its output, a separate activation layer included; "" unknown
    tags: list[str] = field(default_factory=list)  # its tags, in depth order
    parameters: int | None = None  # entries of its parameters, from their histograms
    outputs: int | None = None  # entries of its bias: its output width, where it has one

    @property
    def recurrent(self) -> bool:
        return self.class_name in _RECURRENT

    @property
    def gated_recurrent(self) -> bool:
        """LSTM or GRU: tanh and sigmoid are their gates, not a choice to replace."""
        return self.class_name in _GATED_RECURRENT


@dataclass
class Architecture:
    source: str  # FROM_CONFIG or FROM_PARAMETER_NAMES
    layers: list[ModelLayer]  # those holding tags, in depth order
    model_class: str = ""  # "Sequential", "Functional", a subclass's name; "" without a config
    has_normalization: bool = False
    has_residual: bool = False
    unmapped: list[str] = field(default_factory=list)  # tags no layer of the config holds

    @property
    def known(self) -> bool:
        """Classes and activations are known (a config was logged)."""
        return self.source == FROM_CONFIG

    @property
    def output(self) -> ModelLayer | None:
        """The last layer in depth order: the output layer where the run's tags reach it."""
        return self.layers[-1] if self.layers else None

    def layer_of(self, tag: str) -> ModelLayer | None:
        return next((layer for layer in self.layers if tag in layer.tags), None)

    def layers_of(self, tags: list[str]) -> list[ModelLayer]:
        found = [self.layer_of(tag) for tag in tags]
        return list({id(layer): layer for layer in found if layer is not None}.values())


@dataclass
class _Node:
    """One layer of a config, flattened out of the models it is nested in."""

    name: str
    path: str
    class_name: str
    activation: str | None  # its own activation argument, normalised; None where it has none
    inputs: list[str]  # paths of the layers it reads
    output: str | None = None  # a nested model: the path of its last layer, which its readers read


def read_architecture(config: str | None, tags: list[str], sizes: dict[str, int]) -> Architecture:
    """The layers of a run's tags (depth order), from its logged `config` (JSON text) where it has one
    that holds them, else from the tags' parameter names. `sizes`: each tag's entry count."""
    nodes = _nodes_of_config(config)
    if nodes:
        architecture = _from_config(nodes, tags)
    else:
        architecture = Architecture(FROM_PARAMETER_NAMES, _layers_by_name(tags))
    for layer in architecture.layers:
        counts = [sizes[tag] for tag in layer.tags if sizes.get(tag)]
        layer.parameters = sum(counts) if counts else None
        biases = [sizes[tag] for tag in layer.tags if sizes.get(tag) and is_bias(tag)]
        layer.outputs = biases[0] if len(biases) == 1 else None
    return architecture


def _from_config(nodes: list[_Node], tags: list[str]) -> Architecture:
    activation = _effective_activations(nodes)
    by_path: dict[str, ModelLayer] = {}
    unmapped = []
    for tag in tags:
        node = _node_of(layer_path(tag), nodes)
        if node is None:
            unmapped.append(tag)
            continue
        layer = by_path.get(node.path)
        if layer is None:
            # "unknown": a logger that cannot see the activation (PyTorch's F.gelu inside forward())
            own = "" if activation[node.path] == "unknown" else activation[node.path]
            layer = by_path[node.path] = ModelLayer(node.name, node.path, node.class_name, own)
        layer.tags.append(tag)
    layers = list(by_path.values()) + _layers_by_name(unmapped)  # shown, with what the config cannot say
    order = {tag: i for i, tag in enumerate(tags)}
    layers.sort(key=lambda layer: order[layer.tags[0]])
    return Architecture(
        FROM_CONFIG,
        layers,
        model_class=nodes[0].class_name if nodes[0].path == "" else "",
        has_normalization=any("Normalization" in n.class_name for n in nodes),
        has_residual=any(n.class_name in _RESIDUAL for n in nodes),
        unmapped=unmapped,
    )


def _layers_by_name(tags: list[str]) -> list[ModelLayer]:
    return [
        ModelLayer(path.split("/")[-1] or path, path, "", "", group)
        for path, group in _group_by_path(tags).items()
    ]


def _group_by_path(tags: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for tag in tags:
        groups.setdefault(layer_path(tag), []).append(tag)
    return groups


def _node_of(tag_path: str, nodes: list[_Node]) -> _Node | None:
    """The config layer whose scoped path appears, as whole segments, in a tag's layer path; the
    longest such (``block/dense`` before ``dense``). Keras 3 prefixes a Sequential model's name
    (``sequential/dense/kernel``) and names a recurrent layer's cell (``lstm/lstm_cell/kernel``)."""
    segments = [s for s in re.split(r"[/.]", tag_path) if s]
    best, best_length = None, 0
    for node in nodes:
        if node.class_name in _MODELS or not node.path:
            continue
        wanted = node.path.split("/")
        n = len(wanted)
        if n > best_length and any(segments[i : i + n] == wanted for i in range(len(segments) - n + 1)):
            best, best_length = node, n
    return best or _node_by_tokens(tag_path, nodes)


_TOKENS = re.compile(r"[/._:\-]+")


def _node_by_tokens(tag_path: str, nodes: list[_Node]) -> _Node | None:
    """Where no path segment names a layer, as where a writer flattened the variable path
    (``sequential_4_dense_17_kernel_grads``): the layer whose name's tokens stand in the tag's tokens,
    whole and in a row, the longest name first (``dense_17``, never ``dense_1`` inside it). A tag that
    two layers' names of that length fit, or none, stays unmapped."""
    tokens = [t for t in _TOKENS.split(tag_path.lower()) if t]
    found: dict[int, list[_Node]] = {}
    for node in nodes:
        if node.class_name in _MODELS or not node.path:
            continue
        wanted = [t for t in _TOKENS.split(node.path.lower()) if t]
        n = len(wanted)
        if n and any(tokens[i : i + n] == wanted for i in range(len(tokens) - n + 1)):
            found.setdefault(n, []).append(node)
    if not found:
        return None
    longest = found[max(found)]
    return longest[0] if len({node.path for node in longest}) == 1 else None


def _nodes_of_config(config: str | None) -> list[_Node]:
    """The config's layers, nested models flattened (their own node first), in config order; []
    where the text is not a model config this module knows."""
    if not config:
        return []
    try:
        model = json.loads(config)
    except (ValueError, RecursionError):
        return []
    if not isinstance(model, dict) or not isinstance(model.get("config"), dict):
        return []
    nodes: list[_Node] = [
        _Node(str(model.get("class_name", "")), "", str(model.get("class_name", "")), None, [])
    ]
    _flatten(model["config"], "", nodes, depth=0)
    return nodes if len(nodes) > 1 else []


def _flatten(config: dict, scope: str, out: list[_Node], depth: int) -> None:
    layers = config.get("layers")
    if not isinstance(layers, list) or depth > 20:
        return
    previous: str | None = None
    # A Sequential model's layers read the layer before them; a Functional model's name what they read;
    # a subclassed model's layer list (gradaudit's callback) says neither.
    sequential = config.get("layer_order") != "attributes" and not any(
        isinstance(layer, dict) and layer.get("inbound_nodes") for layer in layers
    )
    for layer in layers:
        if not isinstance(layer, dict):
            continue
        inner = layer.get("config") if isinstance(layer.get("config"), dict) else {}
        name = str(inner.get("name") or layer.get("name") or "")
        class_name = str(layer.get("class_name", ""))
        if not name or class_name == "InputLayer":
            continue
        path = f"{scope}/{name}" if scope else name
        if sequential:
            inputs = [previous] if previous else []
        else:
            inputs = [f"{scope}/{n}" if scope else n for n in _inbound_names(layer.get("inbound_nodes"))]
        own = _activation_name(inner.get("activation")) if "activation" in inner else None
        if class_name in _ACTIVATION_LAYERS:
            own = _ACTIVATION_LAYERS[class_name]
            if class_name == "ReLU" and (inner.get("negative_slope") or 0) > 0:
                own = "leaky_relu"
        out.append(_Node(name, path, class_name, own, inputs))
        if isinstance(inner.get("layers"), list):  # a nested model: its layers, under its name
            before = len(out)
            _flatten(inner, path, out, depth + 1)
            if len(out) > before:  # what reads the nested model reads its last layer
                out[before - 1].output = out[-1].path
                path = out[-1].path
        previous = path


def _inbound_names(inbound) -> list[str]:
    """Names of the layers a Functional layer reads: Keras 3 ({"args": [keras tensors]}) or tf.keras 2
    ([[["name", 0, 0, {}], ...]])."""
    names: list[str] = []

    def visit(item) -> None:
        if isinstance(item, dict):
            history = (
                item.get("config", {}).get("keras_history") if isinstance(item.get("config"), dict) else None
            )
            if isinstance(history, list) and history and isinstance(history[0], str):
                names.append(history[0])
                return
            for value in item.values():
                visit(value)
        elif isinstance(item, list):
            if len(item) >= 3 and isinstance(item[0], str) and isinstance(item[1], int):
                names.append(item[0])  # tf.keras 2: [layer name, node index, tensor index, kwargs]
                return
            for value in item:
                visit(value)

    visit(inbound or [])
    return list(dict.fromkeys(names))


def _activation_name(value) -> str:
    """ "relu", or Keras 3's serialised function ({"class_name": "function", "config": "relu"}), or a
    layer ({"class_name": "LeakyReLU"}), normalised to lower case; "linear" for none."""
    if isinstance(value, dict):
        inner = value.get("config")
        if isinstance(inner, str):
            value = inner
        else:
            value = _ACTIVATION_LAYERS.get(str(value.get("class_name", "")), str(value.get("class_name", "")))
    name = str(value or "linear").lower()
    return {"swish": "silu", "leakyrelu": "leaky_relu", "relu6": "relu"}.get(name, name)


def _effective_activations(nodes: list[_Node]) -> dict[str, str]:
    """Each layer's activation as applied to its output: its own, or, where it has none ("linear"),
    that of an activation layer reading it directly or through layers that change no sign."""
    by_path = {node.path: node for node in nodes}
    effective = {node.path: node.activation or "linear" for node in nodes}
    for node in nodes:
        if node.class_name not in _ACTIVATION_LAYERS and node.class_name != "Activation":
            continue
        seen = set()
        targets = list(node.inputs)
        while targets:
            target = by_path.get(targets.pop())
            if target is None or target.path in seen:
                continue
            seen.add(target.path)
            if target.output:
                targets.append(target.output)
            elif _PASS_THROUGH.search(target.class_name):
                targets.extend(target.inputs)
            elif effective.get(target.path) == "linear":
                effective[target.path] = node.activation or "linear"
    return effective
