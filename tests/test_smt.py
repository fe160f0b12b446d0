"""The compact sparse Merkle tree: incremental updates, batching, proofs."""

from __future__ import annotations

import hashlib
import random
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stf.smt as smt
from stf import encoding
from stf.hashing import ZERO_HASH
from stf.smt import (
    NODE_PREFIX,
    MissingNodeError,
    Proof,
    SparseMerkleTree,
    bit_at,
    internal_hash,
    key_path,
    leaf_hash,
    value_hash,
    verify_proof,
)


def _clustered_keys(n: int, bits: int) -> list[bytes]:
    """``n`` keys whose paths share their first ``bits`` bits: deep chains of internal
    nodes with an empty side, which random keys almost never produce."""
    groups: dict[int, list[bytes]] = {}
    for i in range(40_000):
        k = b"p%d" % i
        group = groups.setdefault(int.from_bytes(key_path(k)[:4], "big") >> (32 - bits), [])
        group.append(k)
        if len(group) == n:
            return group
    raise AssertionError("no cluster found")


CLUSTER = _clustered_keys(6, 12)
KEYS = [b"k%d" % i for i in range(30)] + CLUSTER
VALUES = [b"", b"a", b"b", b"\x00" * 40, b"value-x"]


class NodeStore:
    """Just enough of a KV store for the tree: nodes under ``n:``."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)


def apply(
    store: NodeStore, root: bytes, changes: dict[bytes, bytes | None], tree: Any = None
) -> bytes:
    """Update through a tree, commit its new nodes to ``store``, return the new root.

    ``changes`` maps keys to values (not value hashes); ``None`` deletes.
    """
    hashed = {k: None if v is None else value_hash(v) for k, v in changes.items()}
    return update_and_commit(store, tree or SparseMerkleTree(store), root, hashed)[0]


def update_and_commit(
    store: NodeStore, tree: SparseMerkleTree, root: bytes, changes: dict[bytes, bytes | None]
) -> tuple[bytes, dict[bytes, bytes]]:
    """One batch of value hashes through ``tree``: the new root and the nodes it made, which
    are committed to ``store`` (each checked to be stored under its own hash)."""
    tree.new_nodes = {}
    new_root = tree.update(root, changes)
    for h, node in tree.new_nodes.items():
        assert hashlib.sha256(node).digest() == h
        store.data[NODE_PREFIX + h] = node
    return new_root, tree.new_nodes


def reference_root(state: dict[bytes, bytes]) -> bytes:
    """The spec of docs/state.md, written out directly: no store, no incremental logic."""

    def build(items: list[tuple[bytes, bytes]], d: int) -> bytes:
        if not items:
            return ZERO_HASH
        if len(items) == 1:
            return leaf_hash(*items[0])
        left = [it for it in items if not bit_at(it[0], d)]
        right = [it for it in items if bit_at(it[0], d)]
        return internal_hash(build(left, d + 1), build(right, d + 1))

    return build([(key_path(k), value_hash(v)) for k, v in state.items()], 0)


def fresh_prove(store: NodeStore, root: bytes, key: bytes) -> Proof:
    """Prove with a new tree, so only nodes that reached the store are used."""
    return SparseMerkleTree(store).prove(root, key)


def check_all_proofs(store: NodeStore, root: bytes, state: dict[bytes, bytes]) -> None:
    for k in KEYS:
        proof = fresh_prove(store, root, k)
        assert verify_proof(root, k, state.get(k), proof), k
        if k in state:
            assert not verify_proof(root, k, None, proof)
            assert not verify_proof(root, k, state[k] + b"!", proof)
        else:
            assert not verify_proof(root, k, b"a", proof)


ops = st.lists(
    st.tuples(st.sampled_from(KEYS), st.one_of(st.none(), st.sampled_from(VALUES))),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(ops, st.data())
def test_incremental_equals_from_scratch(updates: list[Any], data: st.DataObject) -> None:
    store = NodeStore()
    root = ZERO_HASH
    state: dict[bytes, bytes] = {}
    i = 0
    while i < len(updates):
        n = data.draw(st.integers(1, 12))
        batch = dict(updates[i : i + n])  # last write in a batch wins, as in State
        i += n
        root = apply(store, root, batch)
        for k, v in batch.items():
            if v is None:
                state.pop(k, None)
            else:
                state[k] = v
        assert root == reference_root(state)
    scratch = NodeStore()
    assert apply(scratch, ZERO_HASH, dict(state)) == root
    check_all_proofs(store, root, state)


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=30),
    st.randoms(use_true_random=False),
)
def test_root_independent_of_order_and_batching(final: dict[bytes, bytes], rnd: Any) -> None:
    expected = reference_root(final)
    # one batch
    assert apply(NodeStore(), ZERO_HASH, final) == expected
    # one key at a time in a random order, after some noise that gets overwritten/deleted
    store = NodeStore()
    root = ZERO_HASH
    noise_keys = rnd.sample(KEYS, 10)
    for k in noise_keys:
        root = apply(store, root, {k: b"noise"})
    items = list(final.items())
    rnd.shuffle(items)
    for k in noise_keys:
        if k not in final:
            items.insert(rnd.randrange(len(items) + 1), (k, None))
    for k, v in items:
        root = apply(store, root, {k: v})
    assert root == expected
    # random batches, reusing one tree (its cache) across updates
    store = NodeStore()
    tree = SparseMerkleTree(store)
    root = ZERO_HASH
    rnd.shuffle(items)
    while items:
        n = rnd.randint(1, 7)
        root = apply(store, root, dict(items[:n]), tree)
        items = items[n:]
    assert root == expected


def test_clustered_keys_share_a_long_prefix() -> None:
    store = NodeStore()
    state = {k: b"v" for k in CLUSTER}
    root = apply(store, ZERO_HASH, state)
    assert root == reference_root(state)
    for k in CLUSTER:
        assert len(fresh_prove(store, root, k).siblings) >= 13
    # removing all but one collapses the chain: the survivor rises to the root
    root = apply(store, root, dict.fromkeys(CLUSTER[1:]))
    assert root == leaf_hash(key_path(CLUSTER[0]), value_hash(b"v"))
    assert fresh_prove(store, root, CLUSTER[0]).siblings == ()


def test_empty_tree() -> None:
    store = NodeStore()
    assert apply(store, ZERO_HASH, {}) == ZERO_HASH
    assert apply(store, ZERO_HASH, {b"absent": None}) == ZERO_HASH
    proof = fresh_prove(store, ZERO_HASH, b"x")
    assert proof == Proof((), None)
    assert verify_proof(ZERO_HASH, b"x", None, proof)
    assert not verify_proof(ZERO_HASH, b"x", b"v", proof)


def test_single_leaf_is_the_root() -> None:
    store = NodeStore()
    root = apply(store, ZERO_HASH, {b"only": b"v"})
    assert root == leaf_hash(key_path(b"only"), value_hash(b"v"))
    proof = fresh_prove(store, root, b"only")
    assert proof.siblings == ()
    assert verify_proof(root, b"only", b"v", proof)
    other = fresh_prove(store, root, b"other")
    assert other.siblings == () and other.leaf == (key_path(b"only"), value_hash(b"v"))
    assert verify_proof(root, b"other", None, other)


def test_delete_absent_keys_changes_nothing() -> None:
    store = NodeStore()
    root = apply(store, ZERO_HASH, {k: b"v" for k in KEYS[:5]})
    assert apply(store, root, {k: None for k in KEYS[5:15]}) == root
    # mixed with a real change, the absent deletes still do nothing
    changed = apply(store, root, {KEYS[0]: b"w", **{k: None for k in KEYS[5:15]}})
    assert changed == reference_root({**{k: b"v" for k in KEYS[1:5]}, KEYS[0]: b"w"})


def test_overwrite_with_same_value_keeps_root() -> None:
    store = NodeStore()
    state = {k: b"v" for k in KEYS[:8]}
    root = apply(store, ZERO_HASH, state)
    assert apply(store, root, {KEYS[3]: b"v"}) == root
    assert apply(store, root, {KEYS[3]: b"v", KEYS[4]: b"v"}) == root


def test_delete_everything_returns_zero_root() -> None:
    store = NodeStore()
    root = apply(store, ZERO_HASH, {k: b"v" for k in KEYS})
    assert root != ZERO_HASH
    for k in KEYS[:-1]:
        root = apply(store, root, {k: None})
        assert root != ZERO_HASH
    # the last leaf rises to the root before it goes
    assert root == leaf_hash(key_path(KEYS[-1]), value_hash(b"v"))
    assert apply(store, root, {KEYS[-1]: None}) == ZERO_HASH
    # and all at once
    root = apply(store, ZERO_HASH, {k: b"v" for k in KEYS})
    assert apply(store, root, dict.fromkeys(KEYS)) == ZERO_HASH


def _find_keys() -> tuple[bytes, bytes, bytes, bytes]:
    """Two keys whose paths share bit 0 and differ at bit 1, plus absent keys that walk
    (a) into the empty half of the root and (b) onto one of the two leaves."""
    cands = [b"c%d" % i for i in range(200)]
    a = cands[0]
    pa = key_path(a)
    b = next(
        c
        for c in cands[1:]
        if bit_at(key_path(c), 0) == bit_at(pa, 0) and bit_at(key_path(c), 1) != bit_at(pa, 1)
    )
    empty_end = next(c for c in cands if bit_at(key_path(c), 0) != bit_at(pa, 0))
    leaf_end = next(
        c
        for c in cands
        if c not in (a, b)
        and bit_at(key_path(c), 0) == bit_at(pa, 0)
        and bit_at(key_path(c), 1) == bit_at(pa, 1)
    )
    return a, b, empty_end, leaf_end


@pytest.fixture
def two_leaf_tree() -> tuple[NodeStore, bytes, dict[bytes, bytes], bytes, bytes]:
    a, b, empty_end, leaf_end = _find_keys()
    store = NodeStore()
    state = {a: b"va", b: b"vb"}
    root = apply(store, ZERO_HASH, state)
    return store, root, state, empty_end, leaf_end


def test_tree_shape(two_leaf_tree: Any) -> None:
    store, root, state, _, _ = two_leaf_tree
    (a, va), (b, vb) = state.items()
    la, lb = leaf_hash(key_path(a), value_hash(va)), leaf_hash(key_path(b), value_hash(vb))
    inner = internal_hash(la, lb) if not bit_at(key_path(a), 1) else internal_hash(lb, la)
    top = (
        internal_hash(inner, ZERO_HASH)
        if not bit_at(key_path(a), 0)
        else internal_hash(ZERO_HASH, inner)
    )
    assert root == top
    assert fresh_prove(store, root, a).siblings == (ZERO_HASH, lb)


def test_inclusion_proofs(two_leaf_tree: Any) -> None:
    store, root, state, _, _ = two_leaf_tree
    for k, v in state.items():
        proof = fresh_prove(store, root, k)
        assert len(proof.siblings) == 2
        assert proof.leaf == (key_path(k), value_hash(v))
        assert verify_proof(root, k, v, proof)
        assert SparseMerkleTree(store).get_value_hash(root, k) == value_hash(v)


def test_non_inclusion_empty_end(two_leaf_tree: Any) -> None:
    store, root, _, empty_end, _ = two_leaf_tree
    proof = fresh_prove(store, root, empty_end)
    assert proof.leaf is None and len(proof.siblings) == 1
    assert verify_proof(root, empty_end, None, proof)
    assert not verify_proof(root, empty_end, b"va", proof)
    assert SparseMerkleTree(store).get_value_hash(root, empty_end) is None


def test_non_inclusion_other_leaf_end(two_leaf_tree: Any) -> None:
    store, root, state, _, leaf_end = two_leaf_tree
    proof = fresh_prove(store, root, leaf_end)
    assert proof.leaf is not None and proof.leaf[0] != key_path(leaf_end)
    assert len(proof.siblings) == 2
    assert verify_proof(root, leaf_end, None, proof)
    # claiming presence with the other key's leaf and value fails
    other_key = next(k for k in state if key_path(k) == proof.leaf[0])
    assert not verify_proof(root, leaf_end, state[other_key], proof)
    assert SparseMerkleTree(store).get_value_hash(root, leaf_end) is None


def test_tampered_proofs_fail(two_leaf_tree: Any) -> None:
    store, root, state, empty_end, leaf_end = two_leaf_tree
    (a, va), (b, vb) = state.items()
    pa = fresh_prove(store, root, a)
    pb = fresh_prove(store, root, b)
    assert verify_proof(root, a, va, pa)
    for i in range(len(pa.siblings)):
        for byte in (0, 31):
            sibs = list(pa.siblings)
            s = bytearray(sibs[i])
            s[byte] ^= 1
            sibs[i] = bytes(s)
            assert not verify_proof(root, a, va, Proof(tuple(sibs), pa.leaf))
    assert not verify_proof(root, a, vb, pa)  # wrong value
    assert not verify_proof(root, a, va, Proof(pa.siblings[1:], pa.leaf))  # dropped sibling
    assert not verify_proof(root, a, va, Proof(pa.siblings[:-1], pa.leaf))
    assert not verify_proof(root, a, va, Proof((*pa.siblings, ZERO_HASH), pa.leaf))
    assert not verify_proof(root, a, None, pa)  # absence of a present key, its own leaf
    assert not verify_proof(root, a, None, Proof(pa.siblings, None))  # ... or an empty end
    assert not verify_proof(root, a, None, pb)  # ... or the neighbour's leaf
    assert not verify_proof(root, a, vb, pb)  # presence with another key's leaf
    assert not verify_proof(root, a, va, pb)
    # a non-inclusion proof that is cut short or pointed at the wrong root
    pl = fresh_prove(store, root, leaf_end)
    assert not verify_proof(root, leaf_end, None, Proof(pl.siblings[:1], pl.leaf))
    pe = fresh_prove(store, root, empty_end)
    assert not verify_proof(root, empty_end, None, Proof((*pe.siblings, ZERO_HASH), None))
    assert not verify_proof(b"\x01" * 32, empty_end, None, pe)
    # a forged leaf value hash
    forged = Proof(pa.siblings, (pa.leaf[0], value_hash(b"forged")))
    assert not verify_proof(root, a, b"forged", forged)
    # too many siblings is refused outright
    assert not verify_proof(root, a, va, Proof((ZERO_HASH,) * 257, pa.leaf))


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), min_size=1, max_size=40))
def test_proof_wire_round_trip(state: dict[bytes, bytes]) -> None:
    store = NodeStore()
    root = apply(store, ZERO_HASH, state)
    for k in KEYS:
        proof = fresh_prove(store, root, k)
        wire = encoding.decode(encoding.encode(proof.to_wire()))
        back = Proof.from_wire(wire)
        assert back == proof
        assert verify_proof(root, k, state.get(k), back)


H = b"\x11" * 32


@pytest.mark.parametrize(
    "wire",
    [
        None,
        b"",
        [],
        [[]],
        [[], None, None],
        ([], None),
        [None, None],
        [(H,), None],
        [[H[:31]], None],
        [[H + b"\x00"], None],
        [["x" * 32], None],
        [[H] * 257, None],
        [[H], H],
        [[H], [H]],
        [[H], [H, H, H]],
        [[H], [H, H[:31]]],
        [[H], [H, "x" * 32]],
        [[H], (H, H)],
    ],
)
def test_from_wire_rejects_bad_shapes(wire: Any) -> None:
    with pytest.raises(ValueError):
        Proof.from_wire(wire)


def test_from_wire_accepts_limits() -> None:
    assert Proof.from_wire([[H] * 256, None]) == Proof((H,) * 256, None)
    assert Proof.from_wire([[], [H, H]]) == Proof((), (H, H))


def test_proofs_against_old_roots() -> None:
    store = NodeStore()
    history: list[tuple[bytes, dict[bytes, bytes]]] = []
    state: dict[bytes, bytes] = {}
    root = ZERO_HASH
    steps: list[dict[bytes, bytes | None]] = [
        {k: b"v1" for k in KEYS[:20]},
        {KEYS[0]: b"v2", KEYS[1]: None, KEYS[25]: b"new"},
        {k: None for k in KEYS[:10]},
        {k: b"v3" for k in KEYS[5:30]},
        dict.fromkeys(KEYS),
    ]
    for changes in steps:
        root = apply(store, root, changes)
        for k, v in changes.items():
            if v is None:
                state.pop(k, None)
            else:
                state[k] = v
        history.append((root, dict(state)))
    assert root == ZERO_HASH
    for old_root, old_state in history:
        check_all_proofs(store, old_root, old_state)


def test_missing_node_is_reported() -> None:
    store = NodeStore()
    root = apply(store, ZERO_HASH, {k: b"v" for k in KEYS[:4]})
    store.data.clear()
    with pytest.raises(MissingNodeError):
        SparseMerkleTree(store).prove(root, KEYS[0])
    with pytest.raises(MissingNodeError):
        SparseMerkleTree(store).update(root, {KEYS[0]: value_hash(b"x")})


# -- the batched update against a plain recursive one ---------------------------------


def reference_update(
    store: NodeStore, root: bytes, changes: dict[bytes, bytes | None]
) -> tuple[bytes, dict[bytes, bytes]]:
    """The update written the plain way: recursion on (old subtree, items), dicts of items
    split bit by bit, no fast paths. Returns the new root and the nodes it writes: every
    node of the new tree on a changed key's path, and an old leaf that such a path ends on
    when it survives (rebuilt with the items there); nothing beside them. Paths are keys."""
    made: dict[bytes, bytes] = {}

    def node(h: bytes) -> bytes:
        return made.get(h) or store.data[NODE_PREFIX + h]

    def put(preimage: bytes) -> bytes:
        h = hashlib.sha256(preimage).digest()
        made[h] = preimage
        return h

    def build(items: dict[bytes, bytes], depth: int) -> bytes:
        if not items:
            return ZERO_HASH
        if len(items) == 1:
            ((path, vhash),) = items.items()
            return put(b"\x00" + path + vhash)
        left = {p: v for p, v in items.items() if not bit_at(p, depth)}
        right = {p: v for p, v in items.items() if bit_at(p, depth)}
        return put(b"\x01" + build(left, depth + 1) + build(right, depth + 1))

    def update(h: bytes, depth: int, items: dict[bytes, bytes | None]) -> bytes:
        if h != ZERO_HASH and node(h)[0] == 0:  # a leaf: rebuild it with the items
            items = {node(h)[1:33]: node(h)[33:65], **items}
        if h == ZERO_HASH or node(h)[0] == 0:
            return build({p: v for p, v in items.items() if v is not None}, depth)
        left_items = {p: v for p, v in items.items() if not bit_at(p, depth)}
        right_items = {p: v for p, v in items.items() if bit_at(p, depth)}
        left, right = node(h)[1:33], node(h)[33:65]
        if left_items:
            left = update(left, depth + 1, left_items)
        if right_items:
            right = update(right, depth + 1, right_items)
        if left == ZERO_HASH and right == ZERO_HASH:
            return ZERO_HASH
        other = right if left == ZERO_HASH else left
        if ZERO_HASH in (left, right) and node(other)[0] == 0:
            return other  # a lone leaf rises
        return put(b"\x01" + left + right)

    return (update(root, 0, changes) if changes else root), made


def _flipped(base: bytes, bits: tuple[int, ...]) -> bytes:
    n = int.from_bytes(base, "big")
    for b in bits:
        n ^= 1 << (255 - b)
    return n.to_bytes(32, "big")


_BASE = hashlib.sha256(b"differential").digest()
# paths (keys are their own paths here): random ones, and ones that share 200 to 255 bits
# with _BASE or with each other, so the tree has long chains with an empty side
DIFF_PATHS = (
    [hashlib.sha256(b"d%d" % i).digest() for i in range(40)]
    + [_flipped(_BASE, bits) for bits in [(), (255,), (254,), (254, 255), (200,), (200, 255)]]
    + [_flipped(_BASE, bits) for bits in [(0,), (0, 255), (1,), (7,), (8,), (128,)]]
)
DIFF_VHASHES = [value_hash(v) for v in VALUES]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.sampled_from(DIFF_PATHS), st.one_of(st.none(), st.sampled_from(DIFF_VHASHES))
            ),
            max_size=60,
        ),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.booleans(), min_size=1, max_size=6),
)
def test_update_matches_plain_recursion(
    batches: list[list[tuple[bytes, bytes | None]]], fresh: list[bool]
) -> None:
    """Same root and the very same new nodes as :func:`reference_update`, batch after
    batch: inserts, overwrites (same value or not), deletes of present and absent keys."""
    store = NodeStore()
    shared = SparseMerkleTree(store)
    root = ZERO_HASH
    state: dict[bytes, bytes] = {}
    with mock.patch.object(smt, "key_path", lambda key: key):
        for i, batch in enumerate(batches):
            changes = dict(batch)  # the last write of a key in a batch wins
            expected_root, expected_nodes = reference_update(store, root, changes)
            tree = SparseMerkleTree(store) if fresh[i % len(fresh)] else shared
            root, made = update_and_commit(store, tree, root, changes)
            assert root == expected_root
            assert made == expected_nodes
            for path, vhash in changes.items():
                if vhash is None:
                    state.pop(path, None)
                else:
                    state[path] = vhash

    def spec(items: dict[bytes, bytes], d: int) -> bytes:
        if len(items) <= 1:
            return leaf_hash(*next(iter(items.items()))) if items else ZERO_HASH
        left = {p: v for p, v in items.items() if not bit_at(p, d)}
        right = {p: v for p, v in items.items() if bit_at(p, d)}
        return internal_hash(spec(left, d + 1), spec(right, d + 1))

    assert root == spec(state, 0)


def test_update_matches_plain_recursion_at_scale() -> None:
    """A few big batches over thousands of leaves, as blocks make them: the shared top of
    the tree with many keys under each node, and the one-key walks below it."""
    rnd = random.Random(15)
    keys = [b"k%d" % i for i in range(3000)]
    store = NodeStore()
    tree = SparseMerkleTree(store)
    root = ZERO_HASH
    for n in (2000, 1000, 1000, 300):
        changes: dict[bytes, bytes | None] = {}
        for _ in range(n):
            changes[rnd.choice(keys)] = (
                None if rnd.random() < 0.2 else value_hash(b"%d" % rnd.randrange(3))
            )
        expected_root, expected_nodes = reference_update(
            store, root, {key_path(k): v for k, v in changes.items()}
        )
        root, made = update_and_commit(store, tree, root, changes)
        assert root == expected_root
        assert made == expected_nodes
