"""Replay into a fresh LevelDB reproduces the chain exactly, and catches a tampered block."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from node.replay import ReplayMismatch, replay
from node.storage import P_BLOCK, Storage, _height_key
from stf import encoding, state_keys
from stf.block import Block, tx_root
from stf.errors import Code
from stf.genesis import Genesis, genesis_block
from stf.hashing import ZERO_HASH, sha256
from stf.smt import SparseMerkleTree, value_hash, verify_proof
from stf.state import STATE_PREFIX
from stf.transition import ChainConfig, build_block
from stf.tx import ZERO_SIGNATURE, make_tx
from stf.txtypes import blob, record

PUT_RECORD, PUT_BLOB = 1, 2
NAMES = ["a", "b", "c"]
VALUES = [b"x", b"yy", b"\x00" * 5]
BLOBS = [b"blob-1", b"blob-2", b"blob-3" * 10]
KINDS = ["record", "record", "delete", "blob", "gap", "low", "bad_chain", "bad_name"]

action = st.tuples(
    st.integers(0, 2),  # sender
    st.sampled_from(KINDS),
    st.sampled_from(NAMES),
    st.sampled_from(VALUES),
    st.sampled_from(BLOBS),
)


class Model:
    """What the chain's state must be, computed without the STF."""

    def __init__(self, senders: list[bytes], config: ChainConfig) -> None:
        self.senders = senders
        self.nonces = [0, 0, 0]
        # genesis writes the chain spec (docs/protocol.md: chain id, sequencer, the limits)
        lim = config.limits
        spec = [config.chain_id, config.sequencer, lim.max_tx_size, lim.max_block_txs]
        spec += [lim.max_record_size, lim.max_blob_size, lim.funding_window_blocks]
        self.state: dict[bytes, bytes] = {state_keys.CHAIN_SPEC: encoding.encode(spec)}
        self.touched: set[bytes] = {state_keys.CHAIN_SPEC}

    def set(self, key: bytes, value: bytes | None) -> None:
        self.touched.add(key)
        if value is None:
            self.state.pop(key, None)
        else:
            self.state[key] = value

    def advance(self, s: int) -> None:
        self.nonces[s] += 1
        self.set(state_keys.nonce(self.senders[s]), encoding.encode(self.nonces[s]))


def make_block_txs(
    actions: list[Any], model: Model, height: int, cfg: ChainConfig, user_keys: list[SigningKey]
) -> tuple[list[Any], list[int], list[Code]]:
    """Turn actions into candidate txs, updating the model; return the expected receipt
    statuses and dropped codes."""
    txs, statuses, dropped = [], [], []
    for s, kind, name, value, data in actions:
        key, sender, n = user_keys[s], model.senders[s], model.nonces[s]
        if kind in ("record", "delete"):
            v = value if kind == "record" else b""
            txs.append(make_tx(key, cfg.chain_id, PUT_RECORD, n, record.payload(name, v)))
            model.advance(s)
            model.set(state_keys.record(sender, name), v or None)
            statuses.append(1)
        elif kind == "blob":
            txs.append(make_tx(key, cfg.chain_id, PUT_BLOB, n, blob.payload(data)))
            model.advance(s)
            bkey = state_keys.blob(sha256(data))
            if bkey in model.state:
                statuses.append(0)
            else:
                model.set(bkey, encoding.encode([len(data), sender, height]))
                statuses.append(1)
        elif kind == "gap" or (kind == "low" and n == 0):
            txs.append(make_tx(key, cfg.chain_id, PUT_RECORD, n + 1, record.payload(name, value)))
            dropped.append(Code.NONCE_TOO_HIGH)
        elif kind == "low":
            txs.append(make_tx(key, cfg.chain_id, PUT_RECORD, n - 1, record.payload(name, value)))
            dropped.append(Code.NONCE_TOO_LOW)
        elif kind == "bad_chain":
            txs.append(make_tx(key, cfg.chain_id + 1, PUT_RECORD, n, record.payload(name, value)))
            dropped.append(Code.WRONG_CHAIN_ID)
        else:
            txs.append(make_tx(key, cfg.chain_id, PUT_RECORD, n, record.payload("", value)))
            dropped.append(Code.INVALID_PAYLOAD)
    return txs, statuses, dropped


def scratch_root(state: dict[bytes, bytes]) -> bytes:
    """The root of ``state`` built from nothing, in a throwaway dict store."""
    return SparseMerkleTree({}).update(ZERO_HASH, {k: value_hash(v) for k, v in state.items()})


def whole_db(storage: Storage) -> dict[bytes, bytes]:
    return dict(storage.iter_prefix(b""))


def start_chain(path: Path, cfg: ChainConfig, genesis: Genesis) -> Storage:
    src = Storage(path)
    g, writes = genesis_block(src, cfg, genesis)
    src.commit_block(g, [], writes)
    return src


def extend(src: Storage, txs: list[Any], cfg: ChainConfig, key: SigningKey, l1: int = 0) -> Any:
    parent = src.head()
    assert parent is not None
    result = build_block(
        src, parent.header, txs, parent.header.timestamp_ms + 1000, (l1, ZERO_HASH), cfg, key
    )
    src.commit_block(result.block, result.receipts, result.writes)
    return result


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(blocks=st.lists(st.lists(action, max_size=8), min_size=1, max_size=5))
def test_replay_reproduces_every_height(
    blocks: list[list[Any]],
    config: ChainConfig,
    sequencer_key: SigningKey,
    user_keys: list[SigningKey],
) -> None:
    senders = [bytes(k.verify_key) for k in user_keys[:3]]
    model = Model(senders, config)
    snapshots: list[dict[bytes, bytes]] = [dict(model.state)]
    with tempfile.TemporaryDirectory() as tmp:
        src = start_chain(Path(tmp) / "src", config, Genesis())
        dst = Storage(Path(tmp) / "dst")
        try:
            for i, actions in enumerate(blocks):
                height = i + 1
                txs, statuses, dropped = make_block_txs(actions, model, height, config, user_keys)
                result = extend(src, txs, config, sequencer_key, l1=i // 2)
                assert [r.status for r in result.receipts] == statuses
                assert [exc.code for _, exc in result.dropped] == dropped
                assert result.block.header.state_root == scratch_root(model.state)
                snapshots.append(dict(model.state))

            seen: list[tuple[int, int]] = []
            last = replay(src, dst, config, Genesis(), lambda h, top: seen.append((h, top)))
            assert last == len(blocks)
            assert seen == [(h, len(blocks)) for h in range(1, len(blocks) + 1)]

            tree = SparseMerkleTree(dst)
            for height, expected in enumerate(snapshots):
                assert dst.block_hash_at(height) == src.block_hash_at(height)
                src_header, dst_header = src.header_at(height), dst.header_at(height)
                assert src_header is not None and dst_header is not None
                assert dst_header.state_root == src_header.state_root
                assert dst_header.state_root == scratch_root(expected)
                # every key the model ever touched proves its value (or absence) at this height
                for key in sorted(model.touched):
                    proof = tree.prove(dst_header.state_root, key)
                    assert verify_proof(dst_header.state_root, key, expected.get(key), proof)
            dst_block = dst.block_by_height(len(blocks))
            assert dst_block is not None
            for tx in dst_block.txs:
                assert dst.receipt(tx.hash) == src.receipt(tx.hash)
                assert dst.tx_location(tx.hash) == src.tx_location(tx.hash)
            flat = {k[len(STATE_PREFIX) :]: v for k, v in dst.iter_prefix(STATE_PREFIX)}
            assert flat == model.state
            # replay rebuilds the source database byte for byte
            assert whole_db(dst) == whole_db(src)
        finally:
            src.close()
            dst.close()


def _populated_source(
    path: Path, cfg: ChainConfig, seq: SigningKey, user_keys: list[SigningKey], n: int = 4
) -> Storage:
    src = start_chain(path, cfg, Genesis())
    a, b = user_keys[0], user_keys[1]
    for h in range(n):
        txs = [
            make_tx(a, cfg.chain_id, PUT_RECORD, h, record.payload("r", b"%d" % h)),
            make_tx(b, cfg.chain_id, PUT_BLOB, h, blob.payload(b"blob %d" % h)),
        ]
        result = extend(src, txs, cfg, seq)
        assert [r.status for r in result.receipts] == [1, 1]
    return src


def _tamper(block: Block, how: str, seq: SigningKey, other: SigningKey) -> Block:
    def resign(key: SigningKey, **changes: Any) -> Block:
        header = dataclasses.replace(block.header, **changes)
        return Block(header, ZERO_SIGNATURE, block.txs).signed(key)

    if how == "state_root":
        return resign(seq, state_root=sha256(b"wrong"))
    if how == "receipts_root":
        return resign(seq, receipts_root=sha256(b"wrong"))
    if how == "dropped_tx":
        short = dataclasses.replace(block, txs=block.txs[:1])
        header = dataclasses.replace(short.header, tx_root=tx_root(short.txs))
        return Block(header, ZERO_SIGNATURE, short.txs).signed(seq)
    assert how == "wrong_signer"
    return resign(other)


@pytest.mark.parametrize(
    ("how", "why"),
    [
        ("state_root", "state root"),
        ("receipts_root", "receipts root mismatch"),
        ("dropped_tx", "receipts root mismatch"),
        ("wrong_signer", "bad sequencer signature"),
    ],
)
def test_replay_detects_tampered_block(
    tmp_path: Path,
    config: ChainConfig,
    sequencer_key: SigningKey,
    user_keys: list[SigningKey],
    how: str,
    why: str,
) -> None:
    src = _populated_source(tmp_path / "src", config, sequencer_key, user_keys)
    dst = Storage(tmp_path / "dst")
    try:
        original = src.block_by_height(2)
        assert original is not None
        forged = _tamper(original, how, sequencer_key, user_keys[3])
        # the hash covers the header, not the signature: only a re-signed header moves it
        assert (forged.hash == original.hash) == (how == "wrong_signer")
        src.put_raw(P_BLOCK + forged.hash, forged.encode())
        src.put_raw(_height_key(2), forged.hash)

        with pytest.raises(ReplayMismatch, match=why) as info:
            replay(src, dst, config, Genesis())
        assert info.value.height == 2
        head = dst.head()
        assert head is not None and head.height == 1  # nothing of block 2 was committed
        assert dst.block_hash_at(2) is None

        # with the real block back, replay resumes from the target's head and completes
        src.delete_raw(P_BLOCK + forged.hash)
        src.put_raw(P_BLOCK + original.hash, original.encode())
        src.put_raw(_height_key(2), original.hash)
        assert replay(src, dst, config, Genesis()) == 4
        for h in range(5):
            assert dst.block_hash_at(h) == src.block_hash_at(h)
        assert whole_db(dst) == whole_db(src)
    finally:
        src.close()
        dst.close()


def test_replay_rejects_other_genesis(
    tmp_path: Path, config: ChainConfig, sequencer_key: SigningKey, user_keys: list[SigningKey]
) -> None:
    src = _populated_source(tmp_path / "src", config, sequencer_key, user_keys, n=1)
    dst = Storage(tmp_path / "dst")
    empty = Storage(tmp_path / "empty")
    try:
        with pytest.raises(ReplayMismatch, match="genesis differs") as info:
            replay(src, dst, config, Genesis(timestamp_ms=1))
        assert info.value.height == 0
        assert dst.head() is None
        with pytest.raises(ReplayMismatch, match="no blocks") as info:
            replay(empty, dst, config, Genesis())
        assert info.value.height == 0
    finally:
        src.close()
        dst.close()
        empty.close()


def test_replay_reports_missing_block(
    tmp_path: Path, config: ChainConfig, sequencer_key: SigningKey, user_keys: list[SigningKey]
) -> None:
    src = _populated_source(tmp_path / "src", config, sequencer_key, user_keys, n=3)
    dst = Storage(tmp_path / "dst")
    try:
        src.delete_raw(_height_key(2))
        with pytest.raises(ReplayMismatch, match="missing") as info:
            replay(src, dst, config, Genesis())
        assert info.value.height == 2
    finally:
        src.close()
        dst.close()
