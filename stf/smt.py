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
from bisect import bisect_left
from dataclasses import dataclass
from itertools import islice
from typing import Protocol

from .hashing import ZERO_HASH

NODE_PREFIX = b"n:"
_sha256 = hashlib.sha256
LEAF_TAG = 0
INTERNAL_TAG = 1


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
        """Apply ``{key: value_hash or None}`` to the tree at ``root``; return the new root.

        ``new_nodes`` gains, in post-order, every node of the new tree on the path to a
        changed key, and each surviving old leaf that such a path ends on (it is written
        again, as it may now sit higher or lower); every other node is reused by hash. An
        empty ``changes`` changes nothing and makes no node.
        """
        if not changes:
            return root
        by_path = dict(zip(map(key_path, changes), changes.values(), strict=True))
        paths = sorted(by_path)
        nodes = self.new_nodes
        before = len(nodes)  # the caller may let new_nodes gather several batches
        new_root = _Batch(self, paths, [by_path[p] for p in paths]).subtree(root, 0, 0, len(paths))
        # the cache learns the batch's nodes at the end, in one call rather than one Python
        # step a node: nothing in a batch loads a node the same batch made
        self._cache.update(islice(nodes.items(), before, None) if before else nodes)
        return new_root


_ONE = b"\x01"  # INTERNAL_TAG as a preimage's first byte
_LEAF = b"\x00"  # LEAF_TAG likewise
_ONE_ZERO = _ONE + ZERO_HASH  # an internal preimage up to its right child, the left empty


class _Batch:
    """One :meth:`SparseMerkleTree.update`: the batch, sorted by path, and the nodes it makes.

    Why it is shaped so (it is the node's hot loop: ~10 nodes a changed key):

    * the items are parallel lists and a subtree's items an index range into them, split by
      bisection on the paths as integers, so the descent never copies or re-sorts them;
    * results are bare hashes, not ``(hash, kind)`` pairs: a node's kind matters only beside
      an empty sibling (:meth:`_combine`), rare enough to look it up there;
    * most nodes are made by :meth:`_walk`, one key alone below the shared top of the tree,
      in a loop rather than by recursion.

    Nodes go straight to the tree's ``new_nodes``, never into the cache mid-batch.
    """

    __slots__ = ("_get", "_ints", "_load", "_made", "_paths", "_vhashes")

    def __init__(
        self, tree: SparseMerkleTree, paths: list[bytes], vhashes: list[bytes | None]
    ) -> None:
        self._paths = paths
        self._vhashes = vhashes
        self._ints = [int.from_bytes(p, "big") for p in paths]
        self._get = tree._cache.get
        self._load = tree._load
        self._made = tree.new_nodes

    def _put(self, preimage: bytes) -> bytes:
        h = _sha256(preimage).digest()
        self._made[h] = preimage
        return h

    def _is_leaf(self, h: bytes) -> bool:
        node = self._made.get(h) or self._get(h) or self._load(h)
        return node[0] == LEAF_TAG

    def subtree(self, h: bytes, depth: int, lo: int, hi: int) -> bytes:
        """New hash of the subtree at ``depth`` whose old hash is ``h``, which the items
        ``lo:hi`` (one or more) fall in."""
        if hi - lo == 1:
            return self._walk(h, depth, lo)
        if h == ZERO_HASH:
            return self._build(depth, self._present(lo, hi))
        node = self._get(h) or self._load(h)
        if node[0] == LEAF_TAG:
            items = self._present(lo, hi)
            lpath = node[1:33]
            if lpath not in self._paths[lo:hi]:  # the old leaf stays, among the new ones
                items = sorted([*items, (lpath, node[33:65])])
            return self._build(depth, items)
        shift = 255 - depth
        ints = self._ints
        split = bisect_left(ints, ((ints[lo] >> shift) | 1) << shift, lo, hi)
        left, right = node[1:33], node[33:65]
        if split > lo:
            left = self.subtree(left, depth + 1, lo, split)
        if split < hi:
            right = self.subtree(right, depth + 1, split, hi)
        return self._combine(left, right)

    def _present(self, lo: int, hi: int) -> list[tuple[bytes, bytes]]:
        """The items ``lo:hi`` that set a value (not deletes), as ``(path, value_hash)``."""
        return [
            (p, v)
            for p, v in zip(self._paths[lo:hi], self._vhashes[lo:hi], strict=True)
            if v is not None
        ]

    def _walk(self, h: bytes, depth: int, i: int) -> bytes:
        """Item ``i`` alone in the subtree ``h`` at ``depth``, without recursion.

        Going down it keeps, per level, the bytes that go before and after the new child's
        hash in the parent's new preimage (``0x01 || left`` and nothing when the path goes
        right; ``0x01`` and the right sibling when it goes left), so coming up costs one
        concatenation and one hash a level. A set never empties a subtree, so no lone leaf
        can rise on the way up (in a compact tree the other side of an empty sibling holds
        two leaves or more): only a delete needs the general :meth:`_combine`.
        """
        path = self._paths[i]
        vhash = self._vhashes[i]
        get, load = self._get, self._load
        heads: list[bytes] = []
        tails: list[bytes] = []
        while h != ZERO_HASH:
            node = get(h) or load(h)
            if node[0] == LEAF_TAG:
                break
            if (path[depth >> 3] >> (7 - (depth & 7))) & 1:
                heads.append(node[:33])
                tails.append(b"")
                h = node[33:65]
            else:
                heads.append(_ONE)
                tails.append(node[33:65])
                h = node[1:33]
            depth += 1
        else:
            node = b""  # the path ends in an empty subtree
        made = self._made
        if not node or node[1:33] == path:  # an empty end, or this key's own leaf
            cur = ZERO_HASH if vhash is None else self._put(_LEAF + path + vhash)
        elif vhash is None:  # deleting an absent key: the leaf found stays, written again
            made[h] = node
            cur = h
        else:
            cur = self._pair(depth, i, h, node)
        if vhash is None:
            for head, tail in zip(reversed(heads), reversed(tails), strict=True):
                cur = self._combine(cur, tail) if tail else self._combine(head[1:], cur)
            return cur
        for head, tail in zip(reversed(heads), reversed(tails), strict=True):
            pre = head + cur + tail
            cur = _sha256(pre).digest()
            made[cur] = pre
        return cur

    def _pair(self, depth: int, i: int, old_hash: bytes, old: bytes) -> bytes:
        """Item ``i``'s new leaf beside the old leaf ``old`` its walk ended on at ``depth``:
        an internal node where the two paths part, under a chain of internal nodes with an
        empty side back up to ``depth``. Both leaves are written, as :meth:`_build` writes
        them (the old one moves down)."""
        path, vhash = self._paths[i], self._vhashes[i]
        assert vhash is not None
        lpath = old[1:33]
        if path < lpath:
            new = self._put(_LEAF + path + vhash)
            self._made[old_hash] = old
            cur = self._put(_ONE + new + old_hash)
        else:
            self._made[old_hash] = old
            new = self._put(_LEAF + path + vhash)
            cur = self._put(_ONE + old_hash + new)
        parted = 256 - (self._ints[i] ^ int.from_bytes(lpath, "big")).bit_length()
        for d in range(parted - 1, depth - 1, -1):
            if (path[d >> 3] >> (7 - (d & 7))) & 1:
                cur = self._put(_ONE_ZERO + cur)
            else:
                cur = self._put(_ONE + cur + ZERO_HASH)
        return cur

    def _combine(self, left: bytes, right: bytes) -> bytes:
        """The node over two new children: none when both are empty, and a lone leaf beside
        an empty side rises in its place (the compact layout); otherwise a new internal node."""
        if left == ZERO_HASH or right == ZERO_HASH:
            other = right if left == ZERO_HASH else left
            if other == ZERO_HASH or self._is_leaf(other):
                return other
        return self._put(_ONE + left + right)

    def _build(self, depth: int, items: list[tuple[bytes, bytes]]) -> bytes:
        """A subtree at ``depth`` made from scratch of ``items`` (sorted, all present)."""
        if not items:
            return ZERO_HASH
        if len(items) == 1:
            path, vhash = items[0]
            return self._put(_LEAF + path + vhash)
        split = _split(items, depth)
        left = self._build(depth + 1, items[:split])
        right = self._build(depth + 1, items[split:])
        return self._put(_ONE + left + right)


def _split(items: list[tuple[bytes, bytes]], depth: int) -> int:
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
