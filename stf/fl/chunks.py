"""Arrays larger than one blob: a manifest of chunk blobs, read and written a block at a time.

An update, a base model or a global step of ``nbytes`` bytes is named in state by
one 32-byte id: the sha256 of a blob that is either

* the array's bytes themselves, when the blob is exactly ``nbytes`` long (every
  array that fits one blob, and so every update sent inline), or
* a **manifest**, when its length is anything else: the canonical msgpack
  ``["MPS/chunks/v1", total, chunk, [h_0, ..., h_{k-1}]]``. The array is the
  concatenation of the blobs ``h_0 ... h_{k-1}``; every chunk but the last is
  exactly ``chunk`` bytes, the last ``total - (k - 1) * chunk`` (1 to ``chunk``)
  bytes, ``chunk`` is a multiple of the value size (so no value straddles two
  chunks) and ``1 <= k <= MAX_CHUNKS``.

The reader knows ``nbytes`` from the task (``d`` times the value size), so the
length alone says which form an id has. The STF never makes or accepts a
manifest of exactly ``nbytes`` bytes (a chunked update must be longer than its
manifest: a shorter one goes inline), so no id can be read both ways.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import encoding, state_keys
from ..encoding import EncodingError
from ..errors import Code, TxFailed
from ..ids import BlobId
from ..records import BlobMeta
from ..state import State

MANIFEST_TAG = "MPS/chunks/v1"
#: Most chunks one manifest may list (16 GiB in 4 MiB chunks).
MAX_CHUNKS = 4096
HASH_SIZE = 32


@dataclass(frozen=True)
class Manifest:
    """``total`` bytes in chunks of ``chunk`` bytes (the last one shorter or equal)."""

    total: int
    chunk: int
    hashes: bytes  # the k chunk ids, concatenated (32 bytes each)

    @property
    def count(self) -> int:
        return len(self.hashes) // HASH_SIZE

    def hash(self, j: int) -> bytes:
        return self.hashes[j * HASH_SIZE : (j + 1) * HASH_SIZE]

    def size(self, j: int) -> int:
        """The length chunk ``j`` must have."""
        return self.chunk if j < self.count - 1 else self.total - (self.count - 1) * self.chunk

    def encode(self) -> bytes:
        return encoding.encode(
            [MANIFEST_TAG, self.total, self.chunk, [self.hash(j) for j in range(self.count)]]
        )

    @classmethod
    def decode(cls, raw: bytes) -> Manifest:
        """Parse and check the structure; raise :class:`EncodingError` naming the fault.

        A blob longer than any manifest can be is refused before it is parsed: the verdict is
        the same (it cannot be one), and parsing a 4 MB msgpack list of four million small
        integers took 1.3 s, which a 174-byte create_task naming it made every verifier spend
        (a red team's): so the bytes are first checked to be laid out as a manifest is."""
        if not _shaped_like_a_manifest(raw):
            raise EncodingError(f"not a chunk manifest ([{MANIFEST_TAG!r}, total, chunk, hashes])")
        v = encoding.decode(raw, max_array_len=MAX_CHUNKS)
        if not isinstance(v, list) or len(v) != 4 or v[0] != MANIFEST_TAG:
            raise EncodingError(f"not a chunk manifest ([{MANIFEST_TAG!r}, total, chunk, hashes])")
        total = encoding.expect_int(v[1], "manifest total", 1)
        chunk = encoding.expect_int(v[2], "manifest chunk size", 1)
        if not isinstance(v[3], list) or not 1 <= len(v[3]) <= MAX_CHUNKS:
            raise EncodingError(f"a manifest lists 1 to {MAX_CHUNKS} chunk hashes")
        hashes = [
            encoding.expect_bytes(h, f"chunk hash {j}", HASH_SIZE) for j, h in enumerate(v[3])
        ]
        k = len(hashes)
        if not (k - 1) * chunk < total <= k * chunk:
            raise EncodingError(f"{k} chunks of {chunk} bytes cannot hold {total} bytes")
        return cls(total, chunk, b"".join(hashes))


def manifest_size(total: int, chunk: int, count: int) -> int:
    """The encoded length of a manifest, whatever its hashes."""
    return len(Manifest(total, chunk, bytes(HASH_SIZE * count)).encode())


_PREFIX = b"\x94" + encoding.encode(MANIFEST_TAG)  # [tag, ...]: a 4-array, then the tag
_UINT_WIDTH = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}  # msgpack uint headers and their widths
_ENTRY = 2 + HASH_SIZE  # a hash as msgpack bin 8: 0xc4, 32, then the bytes


def _shaped_like_a_manifest(raw: bytes) -> bool:
    """Whether ``raw`` has a manifest's byte layout (tag, two unsigned integers, an array of
    ``k <= MAX_CHUNKS`` 32-byte bins and nothing else), read from its headers without building
    one object. Every canonical manifest has it, so refusing the rest changes no verdict."""
    if not raw.startswith(_PREFIX):
        return False
    pos = len(_PREFIX)
    for _ in range(2):  # total, chunk
        if pos >= len(raw):
            return False
        head = raw[pos]
        pos += 1 if head < 0x80 else 1 + _UINT_WIDTH.get(head, len(raw))
    if pos >= len(raw):
        return False
    head = raw[pos]
    if 0x90 <= head <= 0x9F:
        count, pos = head & 0x0F, pos + 1
    elif head == 0xDC:
        count, pos = int.from_bytes(raw[pos + 1 : pos + 3], "big"), pos + 3
    elif head == 0xDD:
        count, pos = int.from_bytes(raw[pos + 1 : pos + 5], "big"), pos + 5
    else:
        return False
    return count <= MAX_CHUNKS and len(raw) - pos == count * _ENTRY and all(
        raw[p : p + 2] == b"\xc4\x20" for p in range(pos, len(raw), _ENTRY)
    )


def stored_blob_size(state: State, blob_hash: bytes) -> int | None:
    """Size of a blob uploaded with ``put_blob`` (from ``blob/<hash>`` in the tree), or None."""
    raw = state.get(state_keys.blob(blob_hash))
    return None if raw is None else BlobMeta.decode(raw).size


def _short(h: bytes) -> str:
    return h.hex()[:16] + "…"


def manifest_from_chunks(
    state: State, hashes: list[bytes], want: int, itemsize: int, what: str
) -> Manifest:
    """The manifest of an update sent as chunk ids; raise :class:`TxFailed` unless it is valid.

    Every chunk must have been uploaded with ``put_blob`` (in an earlier transaction, this
    block's included); the chunk size is the first chunk's.
    """
    k = len(hashes)
    sizes = []
    for j, h in enumerate(hashes):
        size = stored_blob_size(state, h)
        if size is None:
            raise TxFailed(
                Code.BLOB_NOT_FOUND,
                f"{what} chunk {j} of {k} ({_short(h)}) is not stored: upload it with put_blob",
            )
        sizes.append(size)
    total = sum(sizes)
    if total != want:
        raise TxFailed(
            Code.INVALID_UPDATE, f"{what} chunks hold {total} bytes, the layout needs {want}"
        )
    chunk = sizes[0]
    _check_sizes(sizes, chunk, itemsize, what)
    m = Manifest(want, chunk, b"".join(hashes))
    size = len(m.encode())
    if size >= want:
        raise TxFailed(
            Code.INVALID_UPDATE,
            f"{what} of {want} bytes is not longer than its {size}-byte manifest: send it inline",
        )
    return m


def _check_sizes(sizes: list[int], chunk: int, itemsize: int, what: str) -> None:
    k = len(sizes)
    if chunk % itemsize:
        raise TxFailed(
            Code.INVALID_UPDATE,
            f"{what} chunk size {chunk} is not a multiple of the {itemsize}-byte value",
        )
    for j, size in enumerate(sizes[:-1]):
        if size != chunk:
            raise TxFailed(
                Code.INVALID_UPDATE,
                f"{what} chunk {j} is {size} bytes: every chunk but the last must be "
                f"{chunk} bytes (the first chunk's size)",
            )
    if sizes[-1] > chunk:
        raise TxFailed(
            Code.INVALID_UPDATE,
            f"{what} chunk {k - 1} (the last) is {sizes[-1]} bytes, more than the "
            f"{chunk}-byte chunk size",
        )


def check_stored_array(state: State, blob_id: bytes, want: int, itemsize: int, what: str) -> None:
    """Check that ``blob_id`` names ``want`` bytes: one uploaded blob of that size, or a valid
    manifest uploaded with its chunks.

    Only blobs sent with ``put_blob`` count, never one the STF wrote (another task's model, an
    update's bytes): those are read through their task's state alone, which is what lets a node
    prune them once that state moves on (node.blob_gc).

    Raises :class:`TxFailed`: BLOB_NOT_FOUND for a missing blob or chunk, INVALID_UPDATE for a
    wrong size or a malformed manifest.
    """
    blob = state.get_blob(blob_id) if stored_blob_size(state, blob_id) is not None else None
    if blob is None:  # uploaded ones only: a transaction never names a blob the STF computed
        raise TxFailed(Code.BLOB_NOT_FOUND, f"{what} blob was not uploaded (put_blob first)")
    if len(blob) == want:
        return
    try:
        m = Manifest.decode(blob)
    except EncodingError as exc:
        raise TxFailed(
            Code.INVALID_UPDATE,
            f"{what} is {len(blob)} bytes, the layout needs {want}, and it is not a chunk "
            f"manifest ({exc})",
        ) from None
    if m.total != want:
        raise TxFailed(
            Code.INVALID_UPDATE, f"{what} manifest holds {m.total} bytes, the layout needs {want}"
        )
    sizes = []
    for j in range(m.count):
        size = stored_blob_size(state, m.hash(j))
        if size is None:
            raise TxFailed(
                Code.BLOB_NOT_FOUND,
                f"{what} chunk {j} of {m.count} ({_short(m.hash(j))}) is not stored: upload it "
                "with put_blob",
            )
        if size != m.size(j):
            raise TxFailed(
                Code.INVALID_UPDATE,
                f"{what} chunk {j} is {size} bytes, the manifest says {m.size(j)}",
            )
        sizes.append(size)
    _check_sizes(sizes, m.chunk, itemsize, what)


class StoredArray:
    """``count`` values of ``dtype`` stored under one id (a blob or a manifest), read by range.

    Nothing is kept between reads but the manifest: each :meth:`read` fetches the blobs it
    needs, so the memory held is one read's worth, whatever the array's size.
    """

    def __init__(self, state: State, blob_id: bytes, dtype: np.dtype[Any], count: int) -> None:
        self._state = state
        self.id = blob_id
        self.dtype = np.dtype(dtype)
        self.count = count
        nbytes = count * self.dtype.itemsize
        blob = self._blob(blob_id)
        self.manifest: Manifest | None = None
        if len(blob) != nbytes:
            m = Manifest.decode(blob)
            assert m.total == nbytes and m.chunk % self.dtype.itemsize == 0, "bad manifest"
            self.manifest = m

    def _blob(self, blob_hash: bytes) -> bytes:
        blob = self._state.get_blob(blob_hash)
        assert blob is not None, f"a referenced blob is missing: {blob_hash.hex()}"
        return blob

    def read(self, start: int, stop: int) -> npt.NDArray[Any]:
        """Values ``[start, stop)`` (a read-only view where possible)."""
        assert 0 <= start <= stop <= self.count
        dt = self.dtype
        m = self.manifest
        if m is None:
            return np.frombuffer(self._blob(self.id), dt, stop - start, start * dt.itemsize)
        if stop == start:
            return np.empty(0, dt)
        per = m.chunk // dt.itemsize
        first, last = start // per, (stop - 1) // per
        if first == last:
            off = (start - first * per) * dt.itemsize
            return np.frombuffer(self._blob(m.hash(first)), dt, stop - start, off)
        out = np.empty(stop - start, dt)
        for j in range(first, last + 1):
            lo, hi = max(start, j * per), min(stop, (j + 1) * per)
            src = np.frombuffer(self._blob(m.hash(j)), dt, hi - lo, (lo - j * per) * dt.itemsize)
            out[lo - start : hi - start] = src
        return out


class ArrayWriter:
    """Store ``nbytes`` bytes written in pieces; :meth:`finish` returns the id.

    One blob when ``nbytes <= max_blob_size``; otherwise chunks of the largest multiple of
    ``itemsize`` that fits ``max_blob_size`` and a manifest (unless that manifest would not be
    shorter than the data, possible only for a tiny ``max_blob_size``: then one blob). The
    layout depends on ``nbytes`` and the consensus ``max_blob_size`` alone, never on how the
    data is written, so every node stores the same blobs. Holds at most one chunk.
    """

    def __init__(self, state: State, nbytes: int, itemsize: int, max_blob_size: int) -> None:
        self._state = state
        self.nbytes = nbytes
        chunk = max_blob_size // itemsize * itemsize
        self.chunk = 0
        if nbytes > max_blob_size and chunk > 0:
            k = -(-nbytes // chunk)
            if k <= MAX_CHUNKS and manifest_size(nbytes, chunk, k) < nbytes:
                self.chunk = chunk
        self._buf = bytearray()
        self._hashes: list[bytes] = []
        self._written = 0

    def write(self, data: bytes | npt.NDArray[Any]) -> None:
        raw = data if isinstance(data, bytes) else np.ascontiguousarray(data).tobytes()
        self._written += len(raw)
        assert self._written <= self.nbytes, "more data than announced"
        self._buf += raw
        if self.chunk:
            while len(self._buf) >= self.chunk:
                self._hashes.append(self._state.put_blob(bytes(self._buf[: self.chunk])))
                del self._buf[: self.chunk]

    def finish(self) -> BlobId:
        assert self._written == self.nbytes, "less data than announced"
        if not self.chunk:
            return self._state.put_blob(bytes(self._buf))
        if self._buf:
            self._hashes.append(self._state.put_blob(bytes(self._buf)))
            self._buf.clear()
        m = Manifest(self.nbytes, self.chunk, b"".join(self._hashes))
        return self._state.put_blob(m.encode())
