"""A compact sparse Merkle tree over sha256, stored as content-addressed nodes.

Keys are placed at ``path = sha256(key)``, a 256-bit path read from the most
significant bit. A subtree that holds one leaf is stored as that leaf, at the
height where its path first diverges from every other key, so a tree of n
keys is about log2(n) deep rather than 256 (the layout Diem's Jellyfish tree
and Libra's sparse Merkle tree use).

Node preimages (65 bytes each):

* leaf:     ``0x00 || path || sha256(value)``
* internal: ``0x01 || left_hash || right_hash``
* empty:    no node; its hash is 32 zero bytes.

A node's hash is ``sha256(preimage)``; nodes are stored under ``n:`` + hash and
never deleted, so a proof can be produced against any historical root.
Proofs are checked by :func:`verify_proof`, which needs no database and is the
same computation the L1 contracts run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from .hashing import ZERO_HASH

NODE_PREFIX = b"n:"
_sha256 = hashlib.sha256
LEAF_TAG = 0
INTERNAL_TAG = 1

# kinds of a subtree, as tracked during an update
_EMPTY, _LEAF, _INTERNAL, _UNKNOWN = 0, 1, 2, 3


class NodeReader(Protocol):
    def get(self, key: bytes) -> bytes | None: ...


class MissingNodeError(LookupError):
    """A node the root refers to is not in the store: the database is corrupt."""


def key_path(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def value_hash(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def leaf_hash(path: bytes, vhash: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + path + vhash).digest()


def internal_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def bit_at(path: bytes, depth: int) -> int:
    return (path[depth >> 3] >> (7 - (depth & 7))) & 1


@dataclass(frozen=True)
class Proof:
    """Siblings from the root down, and the leaf found at the end of the path.

    ``leaf`` is ``None`` when the path ends in an empty subtree; it is the
    ``(path, value_hash)`` of the leaf found otherwise, which for a
    non-inclusion proof is another key's leaf sharing the walked prefix.
    """

    siblings: tuple[bytes, ...]
    leaf: tuple[bytes, bytes] | None

    def to_wire(self) -> list[object]:
        return [list(self.siblings), None if self.leaf is None else [self.leaf[0], self.leaf[1]]]

    @classmethod
    def from_wire(cls, wire: object) -> Proof:
        if not isinstance(wire, list) or len(wire) != 2 or not isinstance(wire[0], list):
            raise ValueError("proof must be [siblings, leaf]")
        sibs = wire[0]
        if len(sibs) > 256 or not all(isinstance(s, bytes) and len(s) == 32 for s in sibs):
            raise ValueError("proof siblings must be at most 256 hashes of 32 bytes")
        leaf = wire[1]
        if leaf is None:
            return cls(tuple(sibs), None)
        if (
            not isinstance(leaf, list)
            or len(leaf) != 2
            or not all(isinstance(x, bytes) and len(x) == 32 for x in leaf)
        ):
            raise ValueError("proof leaf must be null or [path, value_hash]")
        return cls(tuple(sibs), (leaf[0], leaf[1]))


def verify_proof(root: bytes, key: bytes, value: bytes | None, proof: Proof) -> bool:
    """Check that ``key`` maps to ``value`` (or is absent, for ``None``) under ``root``."""
    path = key_path(key)
    depth = len(proof.siblings)
    if depth > 256:
        return False
    if value is not None:
        if proof.leaf is None or proof.leaf[0] != path or proof.leaf[1] != value_hash(value):
            return False
        node = leaf_hash(path, proof.leaf[1])
    elif proof.leaf is None:
        node = ZERO_HASH
    else:
        other = proof.leaf[0]
        if other == path:
            return False
        for d in range(depth):
            if bit_at(other, d) != bit_at(path, d):
                return False
        node = leaf_hash(other, proof.leaf[1])
    for d in range(depth - 1, -1, -1):
        sib = proof.siblings[d]
        node = internal_hash(sib, node) if bit_at(path, d) else internal_hash(node, sib)
    return node == root


Item = tuple[bytes, bytes | None]  # (path, value hash or None to delete)


class SparseMerkleTree:
    """Reads nodes from a store and produces new nodes for a batch of updates.

    The tree never writes to the store itself: :meth:`update` returns the new
    root and fills ``new_nodes``, which the caller commits atomically with the
    rest of the block. Nodes are immutable, so the small cache is always valid.
    """

    def __init__(self, reader: NodeReader, cache_size: int = 500_000) -> None:
        self._reader = reader
        self._cache: dict[bytes, bytes] = {}
        self._cache_size = cache_size
        self.new_nodes: dict[bytes, bytes] = {}

    # -- node access ---------------------------------------------------------
    def _load(self, h: bytes) -> bytes:
        node = self._cache.get(h)
        if node is None:
            node = self._reader.get(NODE_PREFIX + h)
            if node is None:
                raise MissingNodeError(f"state tree node {h.hex()} is missing")
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[h] = node
        return node

    def _put(self, preimage: bytes) -> bytes:
        h = _sha256(preimage).digest()
        self.new_nodes[h] = preimage
        self._cache[h] = preimage
        return h

    # -- reads ---------------------------------------------------------------
    def get_value_hash(self, root: bytes, key: bytes) -> bytes | None:
        proof = self.prove(root, key)
        if proof.leaf is not None and proof.leaf[0] == key_path(key):
            return proof.leaf[1]
        return None

    def prove(self, root: bytes, key: bytes) -> Proof:
        path = key_path(key)
        siblings: list[bytes] = []
        node_hash = root
        depth = 0
        while node_hash != ZERO_HASH:
            node = self._load(node_hash)
            if node[0] == LEAF_TAG:
                return Proof(tuple(siblings), (node[1:33], node[33:65]))
            left, right = node[1:33], node[33:65]
            if bit_at(path, depth):
                siblings.append(left)
                node_hash = right
            else:
                siblings.append(right)
                node_hash = left
            depth += 1
        return Proof(tuple(siblings), None)

    # -- writes --------------------------------------------------------------
    def update(self, root: bytes, changes: dict[bytes, bytes | None]) -> bytes:
        """Apply ``{key: value_hash or None}`` to the tree at ``root``; return the new root."""
        items = sorted((key_path(k), v) for k, v in changes.items())
        return self._update(root, 0, items)[0]

    def _update(self, node_hash: bytes, depth: int, items: list[Item]) -> tuple[bytes, int]:
        if node_hash == ZERO_HASH:
            return self._build(depth, [it for it in items if it[1] is not None])
        node = self._load(node_hash)
        if node[0] == LEAF_TAG:
            lpath = node[1:33]
            if not any(p == lpath for p, _ in items):
                items = sorted([*items, (lpath, node[33:65])])
            return self._build(depth, [it for it in items if it[1] is not None])
        if len(items) == 1:
            return self._update_one(node, depth, items[0])
        split = _split(items, depth)
        lh, rh = node[1:33], node[33:65]
        if split == 0:
            left, right = (lh, _UNKNOWN), self._update(rh, depth + 1, items)
        elif split == len(items):
            left, right = self._update(lh, depth + 1, items), (rh, _UNKNOWN)
        else:
            left = self._update(lh, depth + 1, items[:split])
            right = self._update(rh, depth + 1, items[split:])
        return self._combine(left, right)

    def _update_one(self, node: bytes, depth: int, item: Item) -> tuple[bytes, int]:
        """The common case below the shared top of the tree: one key, walked iteratively."""
        path = item[0]
        cache = self._cache
        siblings: list[tuple[bytes, int]] = []
        while True:
            if node[0] == LEAF_TAG:
                lpath = node[1:33]
                items = [item] if lpath == path else sorted([item, (lpath, node[33:65])])
                cur = self._build(depth, [it for it in items if it[1] is not None])
                break
            if (path[depth >> 3] >> (7 - (depth & 7))) & 1:
                siblings.append((node[1:33], 0))
                nxt = node[33:65]
            else:
                siblings.append((node[33:65], 1))
                nxt = node[1:33]
            depth += 1
            if nxt == ZERO_HASH:
                cur = self._build(depth, [item] if item[1] is not None else [])
                break
            node = cache.get(nxt) or self._load(nxt)
        new_nodes = self.new_nodes
        for sib, side in reversed(siblings):
            if sib != ZERO_HASH and cur[0] != ZERO_HASH:
                # the hot path, inlined: most nodes of a batch are made here
                pre = b"\x01" + sib + cur[0] if side == 0 else b"\x01" + cur[0] + sib
                h = _sha256(pre).digest()
                new_nodes[h] = pre
                cache[h] = pre
                cur = (h, _INTERNAL)
            elif side == 0:
                cur = self._combine((sib, _UNKNOWN), cur)
            else:
                cur = self._combine(cur, (sib, _UNKNOWN))
        return cur

    def _combine(self, left: tuple[bytes, int], right: tuple[bytes, int]) -> tuple[bytes, int]:
        lh, lk = left
        rh, rk = right
        if lh == ZERO_HASH and rh == ZERO_HASH:
            return ZERO_HASH, _EMPTY
        if lh == ZERO_HASH or rh == ZERO_HASH:
            h, k = (rh, rk) if lh == ZERO_HASH else (lh, lk)
            if k == _UNKNOWN:
                k = _LEAF if self._load(h)[0] == LEAF_TAG else _INTERNAL
            if k == _LEAF:  # a lone leaf rises to where its subtree starts
                return h, _LEAF
        return self._put(b"\x01" + lh + rh), _INTERNAL

    def _build(self, depth: int, items: list[Item]) -> tuple[bytes, int]:
        if not items:
            return ZERO_HASH, _EMPTY
        if len(items) == 1:
            path, vhash = items[0]
            assert vhash is not None
            return self._put(b"\x00" + path + vhash), _LEAF
        split = _split(items, depth)
        lh = self._build(depth + 1, items[:split])[0]
        rh = self._build(depth + 1, items[split:])[0]
        return self._put(b"\x01" + lh + rh), _INTERNAL


def _split(items: list[Item], depth: int) -> int:
    """Index of the first item whose bit at ``depth`` is 1 (items share the prefix)."""
    byte, shift = depth >> 3, 7 - (depth & 7)
    lo, hi = 0, len(items)
    while lo < hi:
        mid = (lo + hi) // 2
        if (items[mid][0][byte] >> shift) & 1:
            hi = mid
        else:
            lo = mid + 1
    return lo
