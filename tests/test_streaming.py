"""The streaming reader's bookkeeping, fed real protobuf records from memory: restarts and the purge of
orphaned data exactly as TensorBoard's EventAccumulator does them (which reads the same bytes from a
file here, as the reference)."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.util import tensor_util

from analyzer import readers
from analyzer.accumulator import read_with_event_accumulator
from analyzer.records import masked_crc32c
from analyzer.streaming import read_stream

LIMITS = [-1.0, 0.0, 1.0]


def framed(events: list[event_pb2.Event]) -> bytes:
    """TFRecord framing, as every writer frames events: length, its CRC, payload, its CRC."""
    out = []
    for event in events:
        payload = event.SerializeToString()
        header = struct.pack("<Q", len(payload))
        out += [
            header,
            struct.pack("<I", masked_crc32c(header)),
            payload,
            struct.pack("<I", masked_crc32c(payload)),
        ]
    return b"".join(out)


def version(text: str = "brain.Event:2") -> event_pb2.Event:
    return event_pb2.Event(file_version=text)


def legacy(step: int, value: float, tag: str = "grad/w") -> event_pb2.Event:
    histo = summary_pb2.HistogramProto(
        min=-value,
        max=value,
        num=2,
        sum=0.0,
        sum_squares=2 * value * value,
        bucket_limit=LIMITS,
        bucket=[1, 0, 1],
    )
    return event_pb2.Event(
        step=step, summary=summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, histo=histo)])
    )


def tf2(step: int, value: float, tag: str = "grad/t") -> event_pb2.Event:
    summary = summary_pb2.Summary.Value(
        tag=tag, tensor=tensor_util.make_tensor_proto(np.array([[-value, value, 2.0]], np.float64))
    )
    summary.metadata.plugin_data.plugin_name = "histograms"
    return event_pb2.Event(step=step, summary=summary_pb2.Summary(value=[summary]))


def simple(step: int, value: float, tag: str = "loss") -> event_pb2.Event:
    return event_pb2.Event(
        step=step, summary=summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
    )


def restart(step: int) -> event_pb2.Event:
    return event_pb2.Event(step=step, session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START))


def from_memory(data: bytes) -> readers.FileContents:
    part = read_stream(io.BytesIO(data), "memory", 0, len(data), len(data), bool)
    return readers.join_parts("memory", [part])


def from_event_accumulator(data: bytes, tmp_path) -> readers.FileContents:
    path = tmp_path / "events.out.tfevents.1.memory"
    path.write_bytes(data)
    return readers.join_parts(str(path), [read_with_event_accumulator(str(path), bool, 0.5)])


def kept(contents: readers.FileContents) -> dict[str, list[tuple[int, float]]]:
    """Per tag: (step, RMS) of histograms, (step, value) of scalars."""
    out = {
        tag: list(zip(layer.steps.tolist(), np.round(layer.rms, 6).tolist()))
        for tag, layer in contents.layers.items()
    }
    out |= {
        tag: list(zip(block.steps.tolist(), block.values.tolist())) for tag, block in contents.scalars.items()
    }
    return out


CASES = {
    # A restart (SessionLog.START at step 3) orphans legacy histograms and simple values logged at
    # step 3 and later; the restarted run's steps 3 and 4 replace them.
    "restart_purges_legacy": (
        [version(), *(legacy(s, 1.0) for s in range(6)), *(simple(s, 1.0) for s in range(6)), restart(3)]
        + [legacy(3, 2.0), legacy(4, 2.0), simple(3, 2.0)],
        {
            "grad/w": [(0, 1.0), (1, 1.0), (2, 1.0), (3, 2.0), (4, 2.0)],
            "loss": [(0, 1.0), (1, 1.0), (2, 1.0), (3, 2.0)],
        },
    ),
    # TF2 tensors are never purged: the later value of a step logged twice wins, the rest stay.
    "restart_keeps_tf2": (
        [version(), *(tf2(s, 1.0) for s in range(6)), restart(3), tf2(3, 2.0)],
        {
            "grad/t": [(s, round(v / np.sqrt(3), 6)) for s, v in enumerate([1, 1, 1, 2, 1, 1])]
        },  # uniform in one bucket
    ),
    # Files older than version 2 purge a tag when its step goes back, from that step on.
    "version_1_purges_on_a_step_back": (
        [version("brain.Event:1"), *(legacy(s, 1.0) for s in range(6)), legacy(2, 3.0)],
        {"grad/w": [(0, 1.0), (1, 1.0), (2, 3.0)]},
    ),
    # ... only the tags of the event that went back.
    "version_1_purges_only_that_tag": (
        [
            version("brain.Event:1"),
            *(legacy(s, 1.0) for s in range(4)),
            *(legacy(s, 1.0, "grad/v") for s in range(4, 6)),
        ]
        + [legacy(1, 5.0)],
        {"grad/w": [(0, 1.0), (1, 5.0)], "grad/v": [(4, 1.0), (5, 1.0)]},
    ),
    # Version 2 files ignore a step that goes back without a restart: both are kept, the later wins.
    "version_2_keeps_a_step_back": (
        [version(), *(legacy(s, 1.0) for s in range(4)), legacy(1, 5.0)],
        {"grad/w": [(0, 1.0), (1, 5.0), (2, 1.0), (3, 1.0)]},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_restart_and_purge_rules_match_event_accumulator(name, tmp_path):
    events, expected = CASES[name]
    data = framed(events)
    streamed = kept(from_memory(data))
    assert streamed == expected
    assert streamed == kept(from_event_accumulator(data, tmp_path))
