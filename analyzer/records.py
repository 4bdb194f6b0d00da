"""TFRecord framing of event files: length, masked CRC32C of the length, payload, masked CRC32C.

The streaming reader under gradaudit's fast path. It checks both CRCs of every record, as
TensorBoard's reader does, and like it stops at the first truncated or corrupt record; unlike it, it
says which, and where.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8


def _crc32c():
    """The C CRC32C. Imported when a file is first read: importing the package reads its own
    metadata (25 ms), a tenth of a re-run whose runs are all cached, which reads no file."""
    from crc32c import crc32c

    return crc32c


def masked_crc32c(data: bytes) -> int:
    crc = _crc32c()(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def framed(payload: bytes) -> bytes:
    """One record as written to a file: what the reader below takes apart."""
    header = struct.pack("<Q", len(payload))
    return header + _FOOTER.pack(masked_crc32c(header)) + payload + _FOOTER.pack(masked_crc32c(payload))


class RecordFile:
    """A new file of framed records (opened exclusively: never another writer's file), with write(),
    flush() and close() as TensorFlow's record writer has them."""

    def __init__(self, path: str):
        self._file = open(path, "xb")

    def write(self, payload: bytes) -> None:
        self._file.write(framed(payload))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


@dataclass
class Damage:
    """Why reading a file stopped early: a sentence for the user and the byte offset."""

    offset: int
    message: str
    at_end: bool = False  # the file ends in a partial record (a writer mid-record, or killed)


class RecordReader:
    """Iterate the payloads of a record file; afterwards `damage` tells whether it ended cleanly.

    The file is read in chunks and payloads are views into them: a read call and a slice per record
    would cost more than the checks (an event file holds one record per logged histogram).
    """

    def __init__(
        self, stream: BinaryIO, size: int, chunk_bytes: int = 1 << 22, start: int = 0, stop: int | None = None
    ):
        """Records from byte `start` (a record's first byte; the stream is positioned there) to the
        first record that starts at or after `stop` (default: the end of the file)."""
        self._stream = stream
        self._size = size
        self._chunk_bytes = chunk_bytes
        self._start = start
        self._stop_at = size if stop is None else stop
        self.damage: Damage | None = None
        self.records = 0
        self.end = start  # where reading ended: the first record not read, or the end of the file

    def __iter__(self) -> Iterator[memoryview]:
        # masked_crc32c is written out inline below: two Python calls per record cost more than
        # the C CRC itself on small records.
        crc, unpack_header, unpack_footer = _crc32c(), _HEADER.unpack_from, _FOOTER.unpack_from
        stop_at, size = self._stop_at, self._size
        buffer, pos, offset = bytearray(), 0, self._start  # offset: where buffer[pos] is in the file
        view = memoryview(buffer)
        while True:
            self.end = offset
            if offset >= stop_at:
                return
            if len(buffer) - pos < 12:
                buffer, pos = self._refill(buffer[pos:], 12), 0
                view = memoryview(buffer)
                if len(buffer) < 12:
                    if buffer:
                        self._stop(
                            offset,
                            "the file ends in a truncated record header (was the writer killed?)",
                            at_end=True,
                        )
                    return
            length, length_crc = unpack_header(buffer, pos)
            c = crc(view[pos : pos + 8])
            if (((c >> 15) | (c << 17)) + _MASK_DELTA) & 0xFFFFFFFF != length_crc:
                self._stop(offset, "a record header failed its CRC check (corrupt)")
                return
            if length > size - offset - 16:
                self._stop(
                    offset, f"the file ends in a truncated record ({length:,} bytes announced)", at_end=True
                )
                return
            end = pos + 16 + length
            if end > len(buffer):
                buffer, pos, end = self._refill(buffer[pos:], 16 + length), 0, 16 + length
                view = memoryview(buffer)
                if end > len(buffer):
                    message = "the file ends in a truncated record (was the writer killed?)"
                    self._stop(offset, message, at_end=True)
                    return
            payload = view[pos + 12 : end - 4]
            c = crc(payload)
            if (((c >> 15) | (c << 17)) + _MASK_DELTA) & 0xFFFFFFFF != unpack_footer(buffer, end - 4)[0]:
                self._stop(offset, "a record failed its CRC check (corrupt)")
                return
            offset += end - pos
            pos = end
            self.records += 1
            yield payload

    def _refill(self, rest: bytes | bytearray, need: int) -> bytearray:
        """`rest` and what follows it in the file, at least `need` bytes unless the file ends first.
        Read straight into a new buffer (not read, then joined): one copy of the file, not two."""
        buffer = bytearray(max(need, len(rest) + self._chunk_bytes))
        buffer[: len(rest)] = rest
        have = len(rest)
        readinto = getattr(self._stream, "readinto", None)  # remote files (GFile) only read
        with memoryview(buffer) as view:
            while have < need or have == len(rest):
                if readinto is not None:
                    count = readinto(view[have:])
                else:
                    data = self._stream.read(len(buffer) - have)
                    count = len(data)
                    view[have : have + count] = data
                if not count:
                    break
                have += count
        del buffer[have:]
        return buffer

    def _stop(self, offset: int, message: str, at_end: bool = False) -> None:
        self.damage = Damage(
            offset, f"{message} at byte {offset:,}; the rest of this file was not read", at_end
        )


def first_record_at_or_after(stream: BinaryIO, offset: int, size: int, window: int = 1 << 16) -> int:
    """The offset of the first record that starts at or after `offset`: the first position where a
    plausible length, its CRC and the payload's CRC all check (a false match needs two 32-bit CRCs to
    agree by chance). `size` if none does. Lets a file be read in byte ranges, one per process."""
    position = offset
    while position < size - 16:
        stream.seek(position)
        data = stream.read(window + 12)
        for at in range(min(window, len(data) - 11)):
            length, length_crc = _HEADER.unpack_from(data, at)
            if length > size - (position + at) - 16 or masked_crc32c(data[at : at + 8]) != length_crc:
                continue
            stream.seek(position + at + 12)
            payload, footer = stream.read(length), stream.read(4)
            if len(footer) == 4 and masked_crc32c(payload) == _FOOTER.unpack(footer)[0]:
                return position + at
        position += window
    return size
