"""An append-only file of acknowledged transactions, so a killed node loses none.

Each record is ``magic (4) || length (u32) || crc32 (u32) || raw transaction``, the checksum
over the length and the transaction, written with one ``write`` call before the transaction
is acknowledged: once the call returns the bytes are in the OS, which a killed process cannot
take back. The file is compacted by rewriting it to a temporary file and renaming it over the
old one, which is atomic.

Damage loses only what it touches. A record that fails its length or checksum (a torn tail
from a kill mid-write, or a flipped byte anywhere) is skipped up to the next ``magic`` that
starts a valid record, so every intact record after a bad one is recovered (formerly one
flipped byte dropped every later acknowledged transaction: 91 of 100 in a test). What was
skipped is reported (:attr:`TxJournal.damage`) and logged by the caller. A stray ``magic``
inside a transaction's bytes is no risk: the record it would start must also pass the length
bound and the checksum.

A file rather than LevelDB: journal entries live for about one block, and
putting megabytes of them through LevelDB's log and compactions cost several
times more CPU than the admission checks themselves (measured by bench/ingest.py).
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"MPSj"
_HEADER = struct.Struct(">4sII")
_LENGTH = struct.Struct(">I")


_IOV_MAX = 512  # buffers per writev (Linux takes 1,024)


def _header(raw: bytes) -> bytes:
    length = _LENGTH.pack(len(raw))
    return _HEADER.pack(MAGIC, len(raw), zlib.crc32(raw, zlib.crc32(length)))


def _record(raw: bytes) -> bytes:
    return _header(raw) + raw


@dataclass(frozen=True)
class Damage:
    """Bytes of the journal that held no valid record, as ``(offset, length)`` spans; a torn
    tail is the last span reaching the end of the file."""

    spans: tuple[tuple[int, int], ...]

    @property
    def skipped_bytes(self) -> int:
        return sum(n for _, n in self.spans)


class JournalClosed(OSError):
    """A write came after :meth:`TxJournal.close` (a stream still writing at shutdown)."""


class TxJournal:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.size = os.fstat(self._fd).st_size
        self.damage = Damage(())
        self._lock = threading.Lock()

    def append(self, raw: bytes) -> None:
        self.append_many([raw])

    def append_many(self, raws: list[bytes]) -> None:
        """Append records in one gathered write (no copy of the transactions); thread-safe
        against :meth:`rewrite` (``POST /txs`` journals a stream's transactions from a worker
        thread, off the event loop)."""
        parts: list[bytes | memoryview] = []
        for raw in raws:
            parts += (_header(raw), raw)
        total = sum(len(x) for x in parts)
        with self._lock:
            if self._fd < 0:  # closed: its number may be another file's by now (a red team's)
                raise JournalClosed(f"the mempool journal {self.path} is closed")
            at = 0
            while at < len(parts):  # a write may stop short: go on from where it did
                done = os.writev(self._fd, parts[at : at + _IOV_MAX])
                while at < len(parts) and done >= len(parts[at]):
                    done -= len(parts[at])
                    at += 1
                if done:
                    parts[at] = memoryview(parts[at])[done:]
            self.size += total

    def read_all(self) -> list[bytes]:
        """Every intact record, in order; what could not be read is in :attr:`damage`."""
        data = self.path.read_bytes()
        out: list[bytes] = []
        spans: list[tuple[int, int]] = []
        pos = 0
        while pos < len(data):
            raw = _record_at(data, pos)
            if raw is not None:
                out.append(raw)
                pos += _HEADER.size + len(raw)
                continue
            nxt = _next_record(data, pos + 1)
            spans.append((pos, nxt - pos))
            pos = nxt
        self.damage = Damage(tuple(spans))
        return out

    def rewrite(self, raws: Iterable[bytes]) -> None:
        """Replace the journal with exactly ``raws``, atomically."""
        with self._lock:
            if self._fd < 0:
                raise JournalClosed(f"the mempool journal {self.path} is closed")
            self._rewrite(raws)

    def _rewrite(self, raws: Iterable[bytes]) -> None:
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            for raw in raws:
                f.write(_record(raw))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self.size = os.fstat(self._fd).st_size

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def _record_at(data: bytes, pos: int) -> bytes | None:
    """The transaction of a valid record starting at ``pos``, or None."""
    if pos + _HEADER.size > len(data):
        return None
    magic, length, crc = _HEADER.unpack_from(data, pos)
    start = pos + _HEADER.size
    end = start + length
    if magic != MAGIC or end > len(data):
        return None
    raw = data[start:end]
    if zlib.crc32(raw, zlib.crc32(_LENGTH.pack(length))) != crc:
        return None
    return raw


def _next_record(data: bytes, pos: int) -> int:
    """The offset of the next valid record at or after ``pos`` (the file's end if none)."""
    while True:
        pos = data.find(MAGIC, pos)
        if pos < 0:
            return len(data)
        if _record_at(data, pos) is not None:
            return pos
        pos += 1
