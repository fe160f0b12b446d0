"""The state the STF reads and writes: a journaled overlay over a key-value store.

The STF never touches a database. It reads through :class:`KVReader` (node/
backs it with LevelDB, tests with a dict) and returns every write as a plain
dict, which the caller commits in one atomic batch. Keys it owns:

* ``s:`` + key        -> latest value of a state key (flat index for fast reads)
* ``v:`` + sha256(v)  -> value, content-addressed, so values under old roots stay readable
* ``n:`` + node hash  -> state tree node (see :mod:`stf.smt`)
* ``blob:`` + sha256  -> large payloads referenced from state by their hash
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from .ids import BlobId
from .smt import NODE_PREFIX, SparseMerkleTree

STATE_PREFIX = b"s:"
VALUE_PREFIX = b"v:"
BLOB_PREFIX = b"blob:"

_MISSING = object()
_sha256 = hashlib.sha256


class KVReader(Protocol):
    """The only storage interface the STF sees."""

    def get(self, key: bytes) -> bytes | None: ...


class State:
    """State at one root plus uncommitted changes, with per-transaction rollback."""

    def __init__(self, store: KVReader, root: bytes) -> None:
        self._store = store
        self.root = root
        self._changes: dict[bytes, bytes | None] = {}
        self._blobs: dict[bytes, bytes] = {}
        self._journal: list[tuple[bytes, object]] = []
        self._blob_journal: list[bytes] = []

    # -- reads ---------------------------------------------------------------
    def get(self, key: bytes) -> bytes | None:
        if key in self._changes:
            return self._changes[key]
        return self._store.get(STATE_PREFIX + key)

    def get_blob(self, blob_hash: bytes) -> bytes | None:
        blob = self._blobs.get(blob_hash)
        if blob is None:
            blob = self._store.get(BLOB_PREFIX + blob_hash)
        return blob

    # -- writes --------------------------------------------------------------
    def set(self, key: bytes, value: bytes | None) -> None:
        """Set ``key`` to ``value``; ``None`` deletes it."""
        self._journal.append((key, self._changes.get(key, _MISSING)))
        self._changes[key] = value

    def delete(self, key: bytes) -> None:
        self.set(key, None)

    def put_blob(self, data: bytes) -> BlobId:
        blob_hash = BlobId(hashlib.sha256(data).digest())
        if blob_hash not in self._blobs:
            self._blobs[blob_hash] = data
            self._blob_journal.append(blob_hash)
        return blob_hash

    # -- transactions --------------------------------------------------------
    def snapshot(self) -> tuple[int, int]:
        return len(self._journal), len(self._blob_journal)

    def revert(self, snap: tuple[int, int]) -> None:
        """Undo every write made since ``snap`` (a failed transaction's effects)."""
        jlen, blen = snap
        while len(self._journal) > jlen:
            key, old = self._journal.pop()
            if old is _MISSING:
                del self._changes[key]
            else:
                self._changes[key] = old  # type: ignore[assignment]
        while len(self._blob_journal) > blen:
            del self._blobs[self._blob_journal.pop()]

    # -- commit --------------------------------------------------------------
    def commit(
        self, tree: SparseMerkleTree | None = None
    ) -> tuple[bytes, dict[bytes, bytes | None]]:
        """Compute the new root; return it with every store write it implies.

        Nothing is written here: the caller puts the writes in the same atomic
        batch as the block, so a crash never leaves a root without its nodes.
        """
        writes: dict[bytes, bytes | None] = {}
        tree_changes: dict[bytes, bytes | None] = {}
        stored = self._store.get
        for key, value in self._changes.items():
            skey = STATE_PREFIX + key
            if value is None:
                if stored(skey) is None:
                    continue  # deleting an absent key changes nothing
                tree_changes[key] = None
                writes[skey] = None
            else:
                vhash = _sha256(value).digest()  # value_hash, inlined: once per changed key
                tree_changes[key] = vhash
                writes[skey] = value
                writes[VALUE_PREFIX + vhash] = value
        tree = tree or SparseMerkleTree(self._store)
        tree.new_nodes = {}
        new_root = tree.update(self.root, tree_changes) if tree_changes else self.root
        nodes = tree.new_nodes
        # ~10 nodes per changed key: prefixed and copied in C, not one Python step each
        writes.update(zip(map(NODE_PREFIX.__add__, nodes), nodes.values(), strict=True))
        for blob_hash, blob in self._blobs.items():
            writes[BLOB_PREFIX + blob_hash] = blob
        return new_root, writes
