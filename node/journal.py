"""An append-only file of acknowledged transactions, so a killed node loses none.

Each record is ``length (u32) || crc32 (u32) || raw transaction``, written with
one ``write`` call before the transaction is acknowledged: once the call
returns the bytes are in the OS, which a killed process cannot take back. A
torn record at the tail (a kill mid-write) fails its length or checksum and
ends the read. The file is compacted by rewriting it to a temporary file and
renaming it over the old one, which is atomic.

A file rather than LevelDB: journal entries live for about one block, and
putting megabytes of them through LevelDB's log and compactions cost several
times more CPU than the admission checks themselves (measured by bench/ingest.py).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

_HEADER = struct.Struct(">II")


class TxJournal:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.size = os.fstat(self._fd).st_size

    def append(self, raw: bytes) -> None:
        record = _HEADER.pack(len(raw), zlib.crc32(raw)) + raw
        os.write(self._fd, record)
        self.size += len(record)

    def read_all(self) -> list[bytes]:
        data = self.path.read_bytes()
        out, pos = [], 0
        while pos + _HEADER.size <= len(data):
            length, crc = _HEADER.unpack_from(data, pos)
            start, end = pos + _HEADER.size, pos + _HEADER.size + length
            if end > len(data) or zlib.crc32(data[start:end]) != crc:
                break  # torn tail from a crash mid-write: the tx was never acknowledged
            out.append(data[start:end])
            pos = end
        return out

    def rewrite(self, raws: Iterable[bytes]) -> None:
        """Replace the journal with exactly ``raws``, atomically."""
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            for raw in raws:
                f.write(_HEADER.pack(len(raw), zlib.crc32(raw)) + raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self.size = os.fstat(self._fd).st_size

    def close(self) -> None:
        os.close(self._fd)
