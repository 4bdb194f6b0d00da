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

import crc32c

_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8


def masked_crc32c(data: bytes) -> int:
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


@dataclass
class Damage:
    """Why reading a file stopped early: a sentence for the user and the byte offset."""

    offset: int
    message: str


class RecordReader:
    """Iterate the payloads of a record file; afterwards `damage` tells whether it ended cleanly."""

    def __init__(self, stream: BinaryIO, size: int):
        self._stream = stream
        self._size = size
        self.damage: Damage | None = None
        self.records = 0

    def __iter__(self) -> Iterator[bytes]:
        read, offset = self._stream.read, 0
        while True:
            header = read(12)
            if not header:
                return
            if len(header) < 12:
                self._stop(offset, "the file ends in a truncated record header (was the writer killed?)")
                return
            length, length_crc = _HEADER.unpack(header)
            if masked_crc32c(header[:8]) != length_crc:
                self._stop(offset, "a record header failed its CRC check (corrupt)")
                return
            if length > self._size - offset - 16:
                self._stop(offset, f"the file ends in a truncated record ({length:,} bytes announced)")
                return
            payload = read(length)
            footer = read(4)
            if len(payload) < length or len(footer) < 4:
                self._stop(offset, "the file ends in a truncated record (was the writer killed?)")
                return
            if masked_crc32c(payload) != _FOOTER.unpack(footer)[0]:
                self._stop(offset, "a record failed its CRC check (corrupt)")
                return
            offset += 16 + length
            self.records += 1
            yield payload

    def _stop(self, offset: int, message: str) -> None:
        self.damage = Damage(offset, f"{message} at byte {offset:,}; the rest of this file was not read")
