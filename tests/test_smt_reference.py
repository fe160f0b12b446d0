"""The state tree against a deliberately naive reference of the same definition.

The reference below shares no code with :mod:`stf.smt`: it rebuilds the whole
tree from the flat ``{path: value_hash}`` map with per-item bit tests, and
yields every node (hash and preimage) and every proof from that alone. The
properties check, across several successive batches of inserts, updates and
deletes (deleting absent keys included) applied through one reused tree or a
fresh one:

* the root is the reference root, byte for byte;
* every node of the reference tree is in the store with the exact preimage,
  and a batch writes no node that is not in the new tree;
* ``prove`` returns the reference proof, byte for byte, for present and
  absent keys, and it verifies.

Keys come from a pool that mixes random keys with groups whose sha256 paths
share their first 8, 12 or 16 bits (found by brute force), so chains of
internal nodes with an empty side are common. A second property replaces
``key_path`` with the identity so that chosen paths can differ in any bit,
the last one (depth 255) included.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

import stf.smt as smt
from stf.smt import SparseMerkleTree, verify_proof

ZERO = bytes(32)


# -- the reference ---------------------------------------------------------------


def ref_bit(path: bytes, depth: int) -> int:
    return (int.from_bytes(path, "big") >> (255 - depth)) & 1


def ref_leaf(path: bytes, vhash: bytes) -> tuple[bytes, bytes]:
    pre = bytes([0]) + path + vhash
    return hashlib.sha256(pre).digest(), pre


def ref_internal(left: bytes, right: bytes) -> tuple[bytes, bytes]:
    pre = bytes([1]) + left + right
    return hashlib.sha256(pre).digest(), pre


def ref_tree(leaves: dict[bytes, bytes], depth: int, nodes: dict[bytes, bytes]) -> bytes:
    """Root of the subtree holding ``leaves`` (paths sharing ``depth`` bits); fills ``nodes``."""
    if not leaves:
        return ZERO
    if len(leaves) == 1:
        ((path, vhash),) = leaves.items()
        h, pre = ref_leaf(path, vhash)
        nodes[h] = pre
        return h
    left = {p: v for p, v in leaves.items() if ref_bit(p, depth) == 0}
    right = {p: v for p, v in leaves.items() if ref_bit(p, depth) == 1}
    h, pre = ref_internal(ref_tree(left, depth + 1, nodes), ref_tree(right, depth + 1, nodes))
    nodes[h] = pre
    return h


def ref_proof(
    leaves: dict[bytes, bytes], path: bytes
) -> tuple[tuple[bytes, ...], tuple[bytes, bytes] | None]:
    """Siblings from the root down and the leaf the walk ends on, from the definition."""
    siblings: list[bytes] = []
    depth = 0
    while True:
        if not leaves:
            return tuple(siblings), None
        if len(leaves) == 1:
            ((p, v),) = leaves.items()
            return tuple(siblings), (p, v)
        bit = ref_bit(path, depth)
        same = {p: v for p, v in leaves.items() if ref_bit(p, depth) == bit}
        other = {p: v for p, v in leaves.items() if ref_bit(p, depth) != bit}
        siblings.append(ref_tree(other, depth + 1, {}))
        leaves = same
        depth += 1


# -- driving the real tree -------------------------------------------------------


class Store:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)


def run_batches(
    batches: list[list[tuple[bytes, bytes | None]]],
    fresh_tree: list[bool],
    probe_keys: list[bytes],
    path_of: Any,
) -> None:
    """Apply ``batches`` (key, value hash or None) in turn and check everything after each."""
    store = Store()
    shared = SparseMerkleTree(store)
    root = ZERO
    leaves: dict[bytes, bytes] = {}  # path -> value hash, the reference state
    for i, batch in enumerate(batches):
        changes = dict(batch)  # the last write of a key in a batch wins
        tree = SparseMerkleTree(store) if fresh_tree[i % len(fresh_tree)] else shared
        tree.new_nodes = {}
        root = tree.update(root, changes)
        for key, vhash in changes.items():
            if vhash is None:
                leaves.pop(path_of(key), None)
            else:
                leaves[path_of(key)] = vhash
        expected_nodes: dict[bytes, bytes] = {}
        assert root == ref_tree(leaves, 0, expected_nodes)
        for h, pre in tree.new_nodes.items():
            assert expected_nodes.get(h) == pre  # only nodes of the new tree, exact bytes
            store.data[b"n:" + h] = pre
        for h, pre in expected_nodes.items():
            assert store.data.get(b"n:" + h) == pre
        prover = SparseMerkleTree(store)  # cold: only what reached the store
        for key in {*probe_keys, *changes}:
            proof = prover.prove(root, key)
            assert (proof.siblings, proof.leaf) == ref_proof(leaves, path_of(key))
            present = leaves.get(path_of(key))
            if present is None:
                assert verify_proof(root, key, None, proof)
            else:
                value = VALUE_OF[present]
                assert verify_proof(root, key, value, proof)
                assert not verify_proof(root, key, None, proof)


VALUES = [b"", b"a", b"b", b"\x00" * 40, b"value-x"]
VALUE_OF = {hashlib.sha256(v).digest(): v for v in VALUES}
VHASHES = list(VALUE_OF)


def _prefix_groups() -> list[bytes]:
    """Keys whose sha256 paths share their first 8, 12 and 16 bits, a few groups each."""
    by16: dict[int, list[bytes]] = {}
    for i in range(120_000):
        k = b"r%d" % i
        by16.setdefault(int.from_bytes(hashlib.sha256(k).digest()[:2], "big"), []).append(k)
    out: list[bytes] = []
    deep = sorted((g for g in by16.values() if len(g) >= 4), key=len, reverse=True)[:3]
    for g in deep:
        out += g[:6]  # 16 shared bits
    by12: dict[int, list[bytes]] = {}
    for i in range(6000):
        k = b"t%d" % i
        by12.setdefault(int.from_bytes(hashlib.sha256(k).digest()[:2], "big") >> 4, []).append(k)
    out += next(g for g in by12.values() if len(g) >= 5)[:5]  # 12 shared bits
    by8: dict[int, list[bytes]] = {}
    for i in range(400):
        k = b"e%d" % i
        by8.setdefault(hashlib.sha256(k).digest()[0], []).append(k)
    out += next(g for g in by8.values() if len(g) >= 4)[:4]  # 8 shared bits
    return out


GROUPED = _prefix_groups()
POOL = [b"k%d" % i for i in range(24)] + GROUPED


def _check_groups() -> Iterator[int]:
    paths = sorted(int.from_bytes(hashlib.sha256(k).digest(), "big") for k in GROUPED)
    for a, b in itertools.pairwise(paths):
        yield 256 - (a ^ b).bit_length()  # shared leading bits of neighbours


def test_pool_has_long_shared_prefixes() -> None:
    shared = list(_check_groups())
    assert max(shared) >= 16 and sum(s >= 12 for s in shared) >= 10


ops = st.tuples(st.sampled_from(POOL), st.one_of(st.none(), st.sampled_from(VHASHES)))
batches = st.lists(st.lists(ops, min_size=0, max_size=25), min_size=1, max_size=6)


@settings(max_examples=120, deadline=None)
@given(batches, st.lists(st.booleans(), min_size=1, max_size=6), st.data())
def test_tree_matches_reference(
    batch_list: list[list[tuple[bytes, bytes | None]]], fresh: list[bool], data: st.DataObject
) -> None:
    probes = data.draw(st.lists(st.sampled_from(POOL), max_size=8))
    run_batches(batch_list, fresh, probes, smt.key_path)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(ops, min_size=150, max_size=300), min_size=2, max_size=3))
def test_tree_matches_reference_large_batches(
    batch_list: list[list[tuple[bytes, bytes | None]]],
) -> None:
    # many keys per batch: the batched descent, not only the one-key walk
    run_batches(batch_list, [False], POOL[:10], smt.key_path)


# -- chosen paths: keys are their own paths ----------------------------------------

BASE = hashlib.sha256(b"base").digest()


def flipped(bits: frozenset[int]) -> bytes:
    mask = 0
    for b in bits:
        mask |= 1 << (255 - b)
    return (int.from_bytes(BASE, "big") ^ mask).to_bytes(32, "big")


bit_sets = st.frozensets(
    st.one_of(st.integers(0, 255), st.sampled_from([0, 1, 7, 8, 128, 250, 254, 255])), max_size=3
)
path_ops = st.tuples(bit_sets.map(flipped), st.one_of(st.none(), st.sampled_from(VHASHES)))


@settings(max_examples=120, deadline=None)
@given(
    st.lists(st.lists(path_ops, min_size=0, max_size=12), min_size=1, max_size=5),
    st.lists(st.booleans(), min_size=1, max_size=4),
)
def test_chosen_paths_match_reference(
    batch_list: list[list[tuple[bytes, bytes | None]]], fresh: list[bool]
) -> None:
    probes = [flipped(frozenset(s)) for s in ([], [255], [254], [0], [0, 255], [100, 200])]
    with mock.patch.object(smt, "key_path", lambda key: key):
        run_batches(batch_list, fresh, probes, lambda key: key)


def test_paths_differing_only_in_the_last_bit() -> None:
    a, b = BASE, flipped(frozenset([255]))
    va, vb = VHASHES[1], VHASHES[2]
    with mock.patch.object(smt, "key_path", lambda key: key):
        run_batches(
            [[(a, va)], [(b, vb)], [(a, None)], [(a, va), (b, None)]],
            [False],
            [a, b],
            lambda key: key,
        )
        store = Store()
        tree = SparseMerkleTree(store)
        root = tree.update(ZERO, {a: va, b: vb})
        for h, pre in tree.new_nodes.items():
            store.data[b"n:" + h] = pre
        assert len(SparseMerkleTree(store).prove(root, a).siblings) == 256
