"""Record framing: the chunked reader against TensorBoard's own record reader, on real files."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest

from analyzer.accumulator import _event_accumulator_module
from analyzer.records import RecordReader


@pytest.fixture(scope="module")
def event_file(tmp_path_factory):
    """Records from 30 bytes to 3 MB (larger than a small chunk), written by TensorBoard's writer."""
    from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    folder = tmp_path_factory.mktemp("records")
    writer = EventFileWriter(str(folder))
    rng = np.random.default_rng(0)
    for step, size in enumerate([1, 100, 5, 400_000, 3, 20, 7]):
        tensor = tensor_pb2.TensorProto(dtype=2, tensor_content=rng.normal(size=size).tobytes())
        value = summary_pb2.Summary.Value(tag=f"t{step}", tensor=tensor)
        writer.add_event(
            event_pb2.Event(step=step, wall_time=time.time(), summary=summary_pb2.Summary(value=[value]))
        )
    writer.close()
    [path] = folder.iterdir()
    return path.read_bytes()


def tensorboard_records(data: bytes, tmp_path) -> list[bytes]:
    _event_accumulator_module()  # TensorBoard's loader, with its TensorFlow stub
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader

    path = tmp_path / "events.out.tfevents.copy"
    path.write_bytes(data)
    return list(RawEventFileLoader(str(path)).Load())


def read(data: bytes, chunk_bytes: int) -> tuple[list[bytes], RecordReader]:
    reader = RecordReader(io.BytesIO(data), len(data), chunk_bytes=chunk_bytes)
    return [bytes(p) for p in reader], reader


@pytest.mark.parametrize("chunk_bytes", [1, 7, 4096, 1 << 22])
def test_every_record_as_tensorboard_reads_it_whatever_the_chunk_size(event_file, tmp_path, chunk_bytes):
    payloads, reader = read(event_file, chunk_bytes)
    assert payloads == tensorboard_records(event_file, tmp_path)
    assert reader.damage is None and reader.records == 8  # the file version and 7 events


def test_a_cut_anywhere_keeps_every_whole_record_and_names_the_cut(event_file):
    whole, _ = read(event_file, 1 << 22)
    starts = np.cumsum([0] + [16 + len(p) for p in whole])
    for cut in sorted({1, 11, 12, 13, 20, *(starts[1:-1] + 5), *(starts[1:-1] - 3), len(event_file) - 1}):
        payloads, reader = read(event_file[:cut], 4096)
        kept = int(np.searchsorted(starts, cut, side="right")) - 1
        assert payloads == whole[:kept], cut
        assert "truncated" in reader.damage.message and reader.damage.offset == starts[kept], cut


def test_a_flipped_byte_stops_at_its_record_with_the_offset(event_file, tmp_path):
    whole, _ = read(event_file, 1 << 22)
    starts = np.cumsum([0] + [16 + len(p) for p in whole])
    # length, header CRC, payload, payload of the 3 MB record, payload CRC
    for record, where in [(0, 2), (1, 9), (3, 14), (4, 100_000), (4, 3_200_040), (7, 95)]:
        at = starts[record] + where
        damaged = event_file[:at] + bytes([event_file[at] ^ 0x40]) + event_file[at + 1 :]
        payloads, reader = read(damaged, 7)
        assert payloads == whole[:record]
        assert "CRC" in reader.damage.message and reader.damage.offset == starts[record]
        assert f"at byte {starts[record]:,}" in reader.damage.message
        assert len(tensorboard_records(damaged, tmp_path)) == record  # TensorBoard stops there too


@pytest.mark.parametrize("size", [0, 1, 12, 4096, 300_000])
def test_a_framed_record_is_tensorboards_byte_for_byte_and_reads_back(size):
    from tensorboard.summary.writer.record_writer import RecordWriter

    from analyzer.records import framed

    payload = np.random.default_rng(size).bytes(size)
    theirs = io.BytesIO()
    RecordWriter(theirs).write(payload)
    assert framed(payload) == theirs.getvalue()
    payloads, reader = read(framed(payload) * 2, chunk_bytes=4096)
    assert payloads == [payload, payload] and reader.damage is None
