"""Transactions, blocks and the state-transition function."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from conftest import signing_key
from conftest import stake_args as bound_stake
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from stf import encoding, state_keys
from stf.block import Block, Header, Receipt, receipts_root, tx_root
from stf.context import Limits
from stf.errors import BlockInvalid, Code, TxInvalid
from stf.genesis import Genesis, GenesisStake, genesis_block
from stf.hashing import TX_DOMAIN, ZERO_HASH, sha256
from stf.records import ChainSpec
from stf.smt import SparseMerkleTree, value_hash, verify_proof
from stf.stakes import SLASHED, STAKED, UNBONDING, WITHDRAWN, StakeRecord
from stf.state import BLOB_PREFIX, STATE_PREFIX
from stf.transition import ChainConfig, check_tx
from stf.tx import ZERO_SENDER, ZERO_SIGNATURE, Transaction, make_tx
from stf.txtypes import blob, l1_deposit, record

PUT_RECORD, PUT_BLOB, L1_DEPOSIT = 1, 2, 0


# -- helpers -------------------------------------------------------------------


def rec(cfg: ChainConfig, key: SigningKey, nonce: int, name: str = "n", value: bytes = b"v"):
    return make_tx(key, cfg.chain_id, PUT_RECORD, nonce, record.payload(name, value))


def blb(cfg: ChainConfig, key: SigningKey, nonce: int, data: bytes) -> Transaction:
    return make_tx(key, cfg.chain_id, PUT_BLOB, nonce, blob.payload(data))


def dep(cfg: ChainConfig, nonce: int, l1_block: int, log: int, kind: str, args: list[Any]):
    payload = l1_deposit.payload(l1_block, log, kind, args)
    return Transaction(cfg.chain_id, L1_DEPOSIT, ZERO_SENDER, nonce, payload)


# stakers of the deposit tests: ed25519 keys, so that their bindings are real signatures
K1, K2, K3, K5 = (signing_key(100 + i) for i in (1, 2, 3, 5))


def stake_args(key: SigningKey, amount: int = 100, addr: bytes = b"\xaa" * 20) -> list[Any]:
    return bound_stake(key, addr, amount)


def pub(key: SigningKey) -> bytes:
    return bytes(key.verify_key)


def state_get(chain: Any, key: bytes) -> bytes | None:
    return chain.store.get(STATE_PREFIX + key)


def nonce_of(chain: Any, key: SigningKey) -> int:
    raw = state_get(chain, state_keys.nonce(pub(key)))
    return 0 if raw is None else encoding.decode(raw)


def resign(block: Block, key: SigningKey, **changes: Any) -> Block:
    header = dataclasses.replace(block.header, **changes)
    return Block(header, ZERO_SIGNATURE, block.txs).signed(key)


def codes(result: Any) -> list[Code]:
    return [exc.code for _, exc in result.dropped]


def assert_proves(chain: Any, key: bytes, value: bytes | None) -> None:
    root = chain.head.header.state_root
    proof = SparseMerkleTree(chain.store).prove(root, key)
    assert verify_proof(root, key, value, proof)


# -- transactions --------------------------------------------------------------


def test_tx_round_trip_and_hash(config: ChainConfig, user_keys: list[SigningKey]) -> None:
    tx = rec(config, user_keys[0], 3, "name", b"value")
    raw = tx.encode()
    # the hand-assembled envelope is the canonical encoding of [body, signature]
    assert raw == encoding.encode(
        [[tx.chain_id, tx.tx_type, tx.sender, tx.nonce, tx.payload], tx.signature]
    )
    back = Transaction.decode(raw)
    assert back == tx
    assert back.body == tx.body
    assert back.hash == tx.hash == sha256(TX_DOMAIN + tx.body)
    assert back.signature_valid()
    assert back.encode() == raw


@settings(max_examples=50, deadline=None)
@given(
    chain_id=st.integers(0, 2**64 - 1),
    tx_type=st.integers(0, 255),
    nonce=st.integers(0, 2**64 - 1),
    payload=st.binary(max_size=200),
    sig=st.binary(min_size=64, max_size=64),
    sender=st.binary(min_size=32, max_size=32),
)
def test_tx_round_trip_any_fields(
    chain_id: int, tx_type: int, nonce: int, payload: bytes, sig: bytes, sender: bytes
) -> None:
    tx = Transaction(chain_id, tx_type, sender, nonce, payload, sig)
    back = Transaction.decode(tx.encode())
    assert back == tx
    assert back.hash == tx.hash


def test_resigned_tx_has_the_same_hash(config: ChainConfig, user_keys: list[SigningKey]) -> None:
    tx = rec(config, user_keys[0], 0)
    unsigned = dataclasses.replace(tx, signature=ZERO_SIGNATURE)
    assert unsigned.hash == tx.hash and unsigned.body == tx.body
    assert not unsigned.signature_valid()
    assert unsigned.signed(user_keys[0]) == tx  # ed25519 is deterministic
    other_sig = dataclasses.replace(tx, signature=b"\x07" * 64)
    assert other_sig.hash == tx.hash
    assert other_sig.encode() != tx.encode()
    # every body field is covered by the hash
    for field, value in [("nonce", 1), ("chain_id", 1), ("payload", b"\x90"), ("tx_type", 2)]:
        assert dataclasses.replace(tx, **{field: value}).hash != tx.hash
    with pytest.raises(ValueError):
        tx.signed(user_keys[1])


def _tx_list(tx: Transaction) -> list[Any]:
    return [[tx.chain_id, tx.tx_type, tx.sender, tx.nonce, tx.payload], tx.signature]


def _malformed(tx: Transaction) -> list[bytes]:
    good = _tx_list(tx)
    body, sig = good
    variants: list[Any] = [
        [body],
        [body, sig, b""],
        [body[:4], sig],
        [[*body, 0], sig],
        [body, sig[:63]],
        [body, sig + b"\x00"],
        [body, "x" * 64],
        [[body[0], body[1], body[2][:31], body[3], body[4]], sig],
        [[body[0], 256, body[2], body[3], body[4]], sig],
        [[body[0], body[1], body[2], -1, body[4]], sig],
        [[True, body[1], body[2], body[3], body[4]], sig],
        [[body[0], body[1], body[2], body[3], "payload"], sig],
        [[body[0], body[1], body[2], body[3], None], sig],
        b"not a list",
    ]
    out = [encoding.encode(v) for v in variants]
    raw = tx.encode()
    out += [
        b"",
        b"\xc1",
        raw[:-1],
        raw + b"\x00",
        b"\x93" + raw[1:],
        # nonce 0 as uint8 rather than fixint: a non-canonical encoding of a valid tx
        raw.replace(b"\xc4\x20" + tx.sender + b"\x00", b"\xc4\x20" + tx.sender + b"\xcc\x00"),
    ]
    return out


def test_tx_decode_rejects_malformed(config: ChainConfig, user_keys: list[SigningKey]) -> None:
    tx = rec(config, user_keys[0], 0)
    for raw in _malformed(tx):
        assert raw != tx.encode()
        with pytest.raises(TxInvalid) as info:
            Transaction.decode(raw)
        assert info.value.code == Code.MALFORMED_TX, raw


def test_tx_decode_size_limit(config: ChainConfig, user_keys: list[SigningKey]) -> None:
    raw = rec(config, user_keys[0], 0, value=b"x" * 100).encode()
    assert Transaction.decode(raw, max_size=len(raw)).encode() == raw
    with pytest.raises(TxInvalid) as info:
        Transaction.decode(raw, max_size=len(raw) - 1)
    assert info.value.code == Code.PAYLOAD_TOO_LARGE


# -- check_tx ------------------------------------------------------------------


def _check_code(tx: Transaction, cfg: ChainConfig) -> Code:
    with pytest.raises(TxInvalid) as info:
        check_tx(tx, cfg)
    return info.value.code


def test_check_tx_accepts_valid(config: ChainConfig, user_keys: list[SigningKey]) -> None:
    k = user_keys[0]
    assert check_tx(rec(config, k, 0, "a" * 64, b"x" * 4096), config)[1] == ("a" * 64, b"x" * 4096)
    assert check_tx(rec(config, k, 0, "é" * 64), config)[1][0] == "é" * 64
    assert check_tx(rec(config, k, 0, "n", b""), config)[1] == ("n", b"")
    assert check_tx(blb(config, k, 0, b"z"), config)[1] == (b"z", None)
    d = dep(config, 0, 1, 0, "stake", stake_args(K1))
    assert check_tx(d, config)[1] == (1, 0, "stake", stake_args(K1))


def test_check_tx_wrong_chain_id(config: ChainConfig, user_keys: list[SigningKey]) -> None:
    tx = make_tx(user_keys[0], config.chain_id + 1, PUT_RECORD, 0, record.payload("n", b"v"))
    assert _check_code(tx, config) == Code.WRONG_CHAIN_ID
    d = dataclasses.replace(dep(config, 0, 1, 0, "unbond", [b"\x01" * 32]), chain_id=0)
    assert _check_code(d, config) == Code.WRONG_CHAIN_ID


def test_check_tx_unknown_type(config: ChainConfig, user_keys: list[SigningKey]) -> None:
    tx = make_tx(user_keys[0], config.chain_id, 200, 0, record.payload("n", b"v"))
    assert _check_code(tx, config) == Code.UNKNOWN_TX_TYPE


def test_check_tx_bad_signature(config: ChainConfig, user_keys: list[SigningKey]) -> None:
    tx = rec(config, user_keys[0], 0)
    flipped = bytes([tx.signature[0] ^ 1]) + tx.signature[1:]
    assert _check_code(dataclasses.replace(tx, signature=flipped), config) == Code.INVALID_SIGNATURE
    # a signature by someone else, or for another body
    other = rec(config, user_keys[1], 0)
    assert (
        _check_code(dataclasses.replace(tx, signature=other.signature), config)
        == Code.INVALID_SIGNATURE
    )
    assert _check_code(dataclasses.replace(tx, nonce=1), config) == Code.INVALID_SIGNATURE
    assert _check_code(dataclasses.replace(tx, sender=pub(user_keys[1])), config) == (
        Code.INVALID_SIGNATURE
    )
    # a non-privileged type may not use the zero sender
    zero = Transaction(config.chain_id, PUT_RECORD, ZERO_SENDER, 0, record.payload("n", b"v"))
    assert _check_code(zero, config) == Code.INVALID_SIGNATURE
    # the sequencer's build path skips the signature check (the mempool did it)
    bad = dataclasses.replace(tx, signature=flipped)
    assert check_tx(bad, config, verify_signature=False)[1] == ("n", b"v")


def test_check_tx_privileged(config: ChainConfig, user_keys: list[SigningKey]) -> None:
    k = user_keys[0]
    payload = l1_deposit.payload(1, 0, "unbond", [b"\x01" * 32])
    signed = make_tx(k, config.chain_id, L1_DEPOSIT, 0, payload)
    assert _check_code(signed, config) == Code.PRIVILEGED_TX
    zero_sender_signed = Transaction(
        config.chain_id, L1_DEPOSIT, ZERO_SENDER, 0, payload, b"\x01" * 64
    )
    assert _check_code(zero_sender_signed, config) == Code.PRIVILEGED_TX
    key_sender_unsigned = Transaction(config.chain_id, L1_DEPOSIT, pub(k), 0, payload)
    assert _check_code(key_sender_unsigned, config) == Code.PRIVILEGED_TX


SMALL = Limits(max_record_size=16, max_blob_size=32)


@pytest.mark.parametrize(
    ("tx_type", "payload", "code"),
    [
        (PUT_RECORD, record.payload("", b"v"), Code.INVALID_PAYLOAD),
        (PUT_RECORD, record.payload("a" * 65, b"v"), Code.INVALID_PAYLOAD),
        (PUT_RECORD, record.payload("new\nline", b"v"), Code.INVALID_PAYLOAD),
        (PUT_RECORD, record.payload("n", b"x" * 17), Code.PAYLOAD_TOO_LARGE),
        (PUT_RECORD, encoding.encode(["n"]), Code.INVALID_PAYLOAD),
        (PUT_RECORD, encoding.encode(["n", "str-not-bytes"]), Code.INVALID_PAYLOAD),
        (PUT_RECORD, encoding.encode([b"n", b"v"]), Code.INVALID_PAYLOAD),
        (PUT_RECORD, b"\xc1", Code.INVALID_PAYLOAD),
        (PUT_RECORD, b"", Code.INVALID_PAYLOAD),
        (PUT_RECORD, record.payload("n", b"v") + b"\x00", Code.INVALID_PAYLOAD),
        (PUT_BLOB, blob.payload(b""), Code.INVALID_PAYLOAD),
        (PUT_BLOB, blob.payload(b"x" * 33), Code.PAYLOAD_TOO_LARGE),
        (PUT_BLOB, encoding.encode([b"x", b"y"]), Code.INVALID_PAYLOAD),
        (PUT_BLOB, encoding.encode(b"x"), Code.INVALID_PAYLOAD),
    ],
)
def test_check_tx_bad_payloads(
    sequencer_key: SigningKey,
    user_keys: list[SigningKey],
    tx_type: int,
    payload: bytes,
    code: Code,
) -> None:
    cfg = ChainConfig(chain_id=5, sequencer=pub(sequencer_key), limits=SMALL)
    tx = make_tx(user_keys[0], cfg.chain_id, tx_type, 0, payload)
    assert _check_code(tx, cfg) == code


def test_check_tx_payload_limits_are_inclusive(
    sequencer_key: SigningKey, user_keys: list[SigningKey]
) -> None:
    cfg = ChainConfig(chain_id=5, sequencer=pub(sequencer_key), limits=SMALL)
    assert check_tx(rec(cfg, user_keys[0], 0, "n", b"x" * 16), cfg)[1] == ("n", b"x" * 16)
    assert check_tx(blb(cfg, user_keys[0], 0, b"x" * 32), cfg)[1] == (b"x" * 32, None)


@pytest.mark.parametrize(
    "payload",
    [
        encoding.encode([1, 0, "stake", [b"\x01" * 32, b"\xaa" * 20, 0, bytes(64)]]),  # zero amount
        encoding.encode(
            [1, 0, "stake", [b"\x01" * 32, b"\xaa" * 19, 5, bytes(64)]]
        ),  # short address
        encoding.encode([1, 0, "stake", [b"\x01" * 32, b"\xaa" * 20, 5]]),  # no binding
        encoding.encode([1, 0, "stake", [b"\x01" * 32, b"\xaa" * 20, 5, bytes(63)]]),  # short one
        encoding.encode([1, 0, "stake", [b"\x01" * 32]]),
        encoding.encode([1, 0, "unbond", [b"\x01" * 32, b"extra"]]),
        encoding.encode([1, 0, "unbond", [b"\x01" * 31]]),
        encoding.encode([1, 0, "unbond", []]),
        encoding.encode([1, 0, "mint", [b"\x01" * 32]]),
        encoding.encode([-1, 0, "unbond", [b"\x01" * 32]]),
        encoding.encode([1, 0, "unbond"]),
    ],
)
def test_check_tx_bad_deposit_payloads(config: ChainConfig, payload: bytes) -> None:
    tx = Transaction(config.chain_id, L1_DEPOSIT, ZERO_SENDER, 0, payload)
    assert _check_code(tx, config) == Code.INVALID_PAYLOAD


# -- build_block / state_transition ----------------------------------------------


def test_build_block_drops_invalid_keeps_valid(chain: Any, user_keys: list[SigningKey]) -> None:
    cfg = chain.config
    a, b = user_keys[0], user_keys[1]
    a0, a1, b0 = rec(cfg, a, 0, "x", b"1"), rec(cfg, a, 1, "y", b"2"), rec(cfg, b, 0, "x", b"3")
    gap = rec(cfg, a, 2 + 5, "gap")
    low = rec(cfg, a, 0, "low", b"again")
    wrong_chain = make_tx(b, cfg.chain_id + 1, PUT_RECORD, 0, record.payload("w", b"w"))
    bad_payload = make_tx(b, cfg.chain_id, PUT_RECORD, 0, record.payload("", b"w"))
    unknown = make_tx(b, cfg.chain_id, 77, 0, b"\x90")
    result = chain.build([a0, gap, a1, low, wrong_chain, bad_payload, unknown, b0])
    assert list(result.block.txs) == [a0, a1, b0]
    assert codes(result) == [
        Code.NONCE_TOO_HIGH,
        Code.NONCE_TOO_LOW,
        Code.WRONG_CHAIN_ID,
        Code.INVALID_PAYLOAD,
        Code.UNKNOWN_TX_TYPE,
    ]
    assert [r.status for r in result.receipts] == [1, 1, 1]
    assert [r.index for r in result.receipts] == [0, 1, 2]
    assert [r.tx_hash for r in result.receipts] == [a0.hash, a1.hash, b0.hash]
    assert all(r.height == 1 for r in result.receipts)
    h = result.block.header
    assert h.height == 1 and h.parent_hash == chain.head.hash
    assert h.tx_root == tx_root([a0, a1, b0])
    assert h.receipts_root == receipts_root(result.receipts)
    assert result.block.signature_valid()
    chain.commit(result)
    assert state_get(chain, state_keys.record(pub(a), "x")) == b"1"
    assert state_get(chain, state_keys.record(pub(a), "y")) == b"2"
    assert state_get(chain, state_keys.record(pub(b), "x")) == b"3"
    assert state_get(chain, state_keys.record(pub(a), "low")) is None
    assert nonce_of(chain, a) == 2 and nonce_of(chain, b) == 1
    assert_proves(chain, state_keys.record(pub(a), "x"), b"1")
    assert_proves(chain, state_keys.nonce(pub(b)), encoding.encode(1))
    assert_proves(chain, state_keys.record(pub(a), "low"), None)


def test_build_block_respects_max_block_txs(
    make_chain: Any, sequencer_key: SigningKey, user_keys: list[SigningKey]
) -> None:
    cfg = ChainConfig(chain_id=9, sequencer=pub(sequencer_key), limits=Limits(max_block_txs=2))
    chain = make_chain(chain_config=cfg)
    txs = [rec(cfg, user_keys[0], n, f"n{n}") for n in range(4)]
    result = chain.build(txs)
    assert list(result.block.txs) == txs[:2]
    assert result.dropped == []
    chain.verify(Block.decode(result.block.encode()))
    too_many = resign(
        dataclasses.replace(result.block, txs=tuple(txs[:3])),
        sequencer_key,
        tx_root=tx_root(txs[:3]),
    )
    with pytest.raises(BlockInvalid, match="too many transactions"):
        chain.verify(too_many)


def test_state_transition_accepts_built_block(chain: Any, user_keys: list[SigningKey]) -> None:
    cfg = chain.config
    a, b = user_keys[0], user_keys[1]
    txs = [
        rec(cfg, a, 0, "x", b"1"),
        blb(cfg, b, 0, b"blob-data"),
        rec(cfg, a, 1, "x", b""),
        blb(cfg, a, 2, b"blob-data"),  # fails: already stored
        dep(cfg, 0, 5, 1, "stake", stake_args(K5)),
    ]
    result = chain.build(txs, timestamp_ms=12345, l1_origin=(3, b"\x33" * 32))
    assert len(result.block.txs) == 5
    block = Block.decode(result.block.encode())
    assert block == result.block
    writes, receipts = chain.verify(block)
    assert writes == result.writes
    assert receipts == result.receipts
    assert [r.status for r in receipts] == [1, 1, 1, 0, 1]
    assert block.header.timestamp_ms == 12345
    assert block.header.l1_origin_number == 3


def test_build_block_clamps_timestamp(chain: Any, user_keys: list[SigningKey]) -> None:
    chain.build_and_commit([], timestamp_ms=5000)
    result = chain.build([rec(chain.config, user_keys[0], 0)], timestamp_ms=10)
    assert result.block.header.timestamp_ms == 5000
    chain.verify(result.block)


@pytest.fixture
def built(chain: Any, user_keys: list[SigningKey]) -> tuple[Any, Block]:
    """A chain at height 1 (timestamp 1000, l1 origin 2) and a valid block 2 on top."""
    cfg = chain.config
    chain.build_and_commit([rec(cfg, user_keys[0], 0)], timestamp_ms=1000, l1_origin=(2, H32))
    txs = [rec(cfg, user_keys[0], 1, "b", b"2"), rec(cfg, user_keys[1], 0, "c", b"3")]
    result = chain.build(txs, timestamp_ms=2000, l1_origin=(2, H32))
    assert codes(result) == []
    chain.verify(result.block)  # the untampered block is valid
    return chain, result.block


H32 = b"\x22" * 32


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"parent_hash": b"\x11" * 32}, "parent hash"),
        ({"height": 3}, "height 3 does not follow 1"),
        ({"height": 1}, "height 1 does not follow 1"),
        ({"chain_id": 1}, "chain id"),
        ({"timestamp_ms": 999}, "timestamp is before"),
        ({"l1_origin_number": 1}, "l1 origin moved backwards"),
        ({"tx_root": b"\x01" * 32}, "transactions root mismatch"),
        ({"receipts_root": b"\x01" * 32}, "receipts root mismatch"),
        ({"state_root": b"\x01" * 32}, "state root"),
        ({"state_root": ZERO_HASH}, "state root"),
    ],
)
def test_state_transition_rejects_tampered_header(
    built: Any, sequencer_key: SigningKey, changes: dict[str, Any], why: str
) -> None:
    chain, block = built
    with pytest.raises(BlockInvalid, match=why):
        chain.verify(resign(block, sequencer_key, **changes))


def test_state_transition_accepts_equal_timestamp_and_origin(
    built: Any, sequencer_key: SigningKey
) -> None:
    chain, block = built
    parent = chain.head.header
    same = resign(block, sequencer_key, timestamp_ms=parent.timestamp_ms)
    chain.verify(same)


def test_state_transition_rejects_bad_signature(built: Any, sequencer_key: SigningKey) -> None:
    chain, block = built
    sig = bytes([block.signature[0] ^ 0x80]) + block.signature[1:]
    with pytest.raises(BlockInvalid, match="bad sequencer signature"):
        chain.verify(dataclasses.replace(block, signature=sig))
    with pytest.raises(BlockInvalid, match="bad sequencer signature"):
        chain.verify(dataclasses.replace(block, signature=ZERO_SIGNATURE))
    # the header changed after signing
    moved = Block(dataclasses.replace(block.header, timestamp_ms=2001), block.signature, block.txs)
    with pytest.raises(BlockInvalid, match="bad sequencer signature"):
        chain.verify(moved)


def test_state_transition_rejects_wrong_sequencer(built: Any, user_keys: list[SigningKey]) -> None:
    chain, block = built
    impostor = user_keys[3]
    # signed by another key that names itself as sequencer
    with pytest.raises(BlockInvalid, match="not from this chain's sequencer"):
        chain.verify(resign(block, impostor, sequencer=pub(impostor)))
    # signed by another key that names the real sequencer
    with pytest.raises(BlockInvalid, match="bad sequencer signature"):
        chain.verify(resign(block, impostor))


def test_state_transition_rejects_changed_tx_list(built: Any, sequencer_key: SigningKey) -> None:
    chain, block = built
    # dropping a tx without fixing tx_root
    short = Block(block.header, block.signature, block.txs[:1])
    with pytest.raises(BlockInvalid, match="transactions root mismatch"):
        chain.verify(short)
    # dropping a tx and re-rooting: the receipts no longer match
    rerooted = resign(short, sequencer_key, tx_root=tx_root(short.txs))
    with pytest.raises(BlockInvalid, match="receipts root mismatch"):
        chain.verify(rerooted)
    # swapping tx order (both valid in either order) keeps receipts count but not roots
    swapped = Block(block.header, ZERO_SIGNATURE, block.txs[::-1])
    swapped = resign(swapped, sequencer_key, tx_root=tx_root(swapped.txs))
    with pytest.raises(BlockInvalid, match="receipts root mismatch"):
        chain.verify(swapped)


def test_state_transition_rejects_invalid_tx_inside(
    built: Any, sequencer_key: SigningKey, user_keys: list[SigningKey]
) -> None:
    chain, block = built
    cfg = chain.config

    def with_txs(txs: list[Transaction]) -> Block:
        b = Block(block.header, ZERO_SIGNATURE, tuple(txs))
        return resign(b, sequencer_key, tx_root=tx_root(txs))

    bad_nonce = rec(cfg, user_keys[2], 5)
    with pytest.raises(BlockInvalid, match="tx 1: nonce 5, expected 0"):
        chain.verify(with_txs([block.txs[0], bad_nonce]))
    tx = block.txs[0]
    bad_sig = dataclasses.replace(tx, signature=bytes(64))
    with pytest.raises(BlockInvalid, match="tx 0: signature"):
        chain.verify(with_txs([bad_sig]))
    wrong_chain = make_tx(user_keys[2], cfg.chain_id + 1, PUT_RECORD, 0, record.payload("n", b"v"))
    with pytest.raises(BlockInvalid, match="tx 0: transaction is for chain"):
        chain.verify(with_txs([wrong_chain]))
    replayed = chain.blocks[1].txs[0]  # already included at height 1
    with pytest.raises(BlockInvalid, match="tx 0: nonce 0, expected 1"):
        chain.verify(with_txs([replayed]))


def test_bad_signature_passes_build_but_not_transition(
    chain: Any, user_keys: list[SigningKey]
) -> None:
    """build_block trusts the mempool's signature check; a verifier does not."""
    tx = rec(chain.config, user_keys[0], 0)
    forged = dataclasses.replace(tx, signature=b"\x01" * 64)
    result = chain.build([forged])
    assert list(result.block.txs) == [forged]
    with pytest.raises(BlockInvalid, match="signature does not match"):
        chain.verify(result.block)


def test_block_decode_rejects_malformed(built: Any) -> None:
    _, block = built
    raw = block.encode()
    good = encoding.decode(raw)
    for bad in [
        raw[:-1],
        raw + b"\x00",
        encoding.encode(good[:2]),
        encoding.encode([good[0][:9], good[1], good[2]]),
        encoding.encode([good[0], good[1][:63], good[2]]),
        encoding.encode([good[0], good[1], b"not a list"]),
        encoding.encode([good[0], good[1], [b"\xc1"]]),
        encoding.encode([good[0], good[1], ["tx as str"]]),
    ]:
        with pytest.raises((BlockInvalid, TxInvalid)):
            Block.decode(bad)
    assert Block.decode(raw) == block
    assert Header.from_list(good[0]) == block.header


def test_failing_tx_included_with_status_zero(chain: Any, user_keys: list[SigningKey]) -> None:
    cfg = chain.config
    a, b = user_keys[0], user_keys[1]
    data = b"the same blob"
    blob_hash = sha256(data)
    first = chain.build_and_commit([blb(cfg, a, 0, data)], timestamp_ms=1000)
    assert [r.status for r in first.receipts] == [1]
    meta = encoding.encode([len(data), pub(a), 1])
    assert state_get(chain, state_keys.blob(blob_hash)) == meta
    assert chain.store.get(BLOB_PREFIX + blob_hash) == data
    root_before = chain.head.header.state_root

    # b re-uploads the same blob, and sets a record in the same block
    dup = blb(cfg, b, 0, data)
    after = rec(cfg, b, 1, "r", b"v")
    result = chain.build_and_commit([dup, after], timestamp_ms=2000)
    assert list(result.block.txs) == [dup, after]
    r0, r1 = result.receipts
    assert (r0.status, r0.code, r0.index) == (0, Code.BLOB_ALREADY_STORED, 0)
    assert "already stored" in r0.message
    assert (r1.status, r1.code) == (1, 0)
    # nonce advanced for both; the blob metadata still names the first uploader
    assert nonce_of(chain, b) == 2
    assert state_get(chain, state_keys.blob(blob_hash)) == meta
    assert_proves(chain, state_keys.blob(blob_hash), meta)
    assert chain.head.header.state_root != root_before
    # the failed tx wrote nothing except its sender's nonce, and the later record
    changed_state_keys = {k for k in result.writes if k.startswith(STATE_PREFIX)}
    assert changed_state_keys == {
        STATE_PREFIX + state_keys.nonce(pub(b)),
        STATE_PREFIX + state_keys.record(pub(b), "r"),
    }


def test_duplicate_blob_in_one_block(chain: Any, user_keys: list[SigningKey]) -> None:
    cfg = chain.config
    a, b = user_keys[0], user_keys[1]
    data = b"twice in one block"
    result = chain.build([blb(cfg, a, 0, data), blb(cfg, b, 0, data)])
    assert [r.status for r in result.receipts] == [1, 0]
    # the first upload's blob bytes survive the second one's rollback
    assert result.writes[BLOB_PREFIX + sha256(data)] == data
    assert result.writes[STATE_PREFIX + state_keys.blob(sha256(data))] == encoding.encode(
        [len(data), pub(a), 1]
    )
    writes, receipts = chain.verify(Block.decode(result.block.encode()))
    assert writes == result.writes and receipts == result.receipts


def test_failed_blob_does_not_store_bytes(chain: Any, user_keys: list[SigningKey]) -> None:
    """A put_blob that fails for a blob stored earlier leaves no new blob write."""
    cfg = chain.config
    chain.build_and_commit([blb(cfg, user_keys[0], 0, b"x")])
    result = chain.build([blb(cfg, user_keys[1], 0, b"x")])
    assert [r.status for r in result.receipts] == [0]
    assert not any(k.startswith(BLOB_PREFIX) for k in result.writes)


def test_put_record_empty_value_deletes(chain: Any, user_keys: list[SigningKey]) -> None:
    cfg = chain.config
    a = user_keys[0]
    key = state_keys.record(pub(a), "doomed")
    chain.build_and_commit([rec(cfg, a, 0, "doomed", b"alive"), rec(cfg, a, 1, "kept", b"k")])
    assert state_get(chain, key) == b"alive"
    assert_proves(chain, key, b"alive")
    result = chain.build_and_commit([rec(cfg, a, 2, "doomed", b"")])
    assert result.writes[STATE_PREFIX + key] is None
    assert state_get(chain, key) is None
    assert_proves(chain, key, None)
    assert_proves(chain, state_keys.record(pub(a), "kept"), b"k")
    # deleting an absent record touches nothing but the nonce
    result = chain.build_and_commit([rec(cfg, a, 3, "never", b"")])
    assert [r.status for r in result.receipts] == [1]
    assert {k for k in result.writes if k.startswith(STATE_PREFIX)} == {
        STATE_PREFIX + state_keys.nonce(pub(a))
    }
    # set and delete within one block: no trace of the record
    result = chain.build_and_commit([rec(cfg, a, 4, "brief", b"x"), rec(cfg, a, 5, "brief", b"")])
    assert STATE_PREFIX + state_keys.record(pub(a), "brief") not in result.writes
    assert_proves(chain, state_keys.record(pub(a), "brief"), None)


def test_empty_block_keeps_state_root(chain: Any) -> None:
    root = chain.head.header.state_root
    result = chain.build_and_commit([])
    assert result.block.header.state_root == root
    assert result.writes == {}
    assert result.block.header.tx_root == ZERO_HASH


# -- l1 deposits -----------------------------------------------------------------


def _stake(chain: Any, client: bytes) -> tuple[bytes, int, int] | None:
    raw = state_get(chain, state_keys.stake(client))
    if raw is None:
        return None
    r = StakeRecord.decode(raw)
    return r.l1_address, r.amount, int(r.status)


def test_l1_deposit_lifecycle(chain: Any) -> None:
    cfg = chain.config
    c1, c2, c3 = pub(K1), pub(K2), pub(K3)
    addr = b"\xab" * 20
    bound, wrong = Code.KEY_ALREADY_BOUND, Code.WRONG_STAKE_STATUS
    steps = [
        (dep(cfg, 0, 10, 0, "stake", stake_args(K1, 500, addr)), 0, (addr, 500, STAKED)),
        (dep(cfg, 1, 10, 1, "unbond", [c1]), 0, (addr, 500, UNBONDING)),
        (dep(cfg, 2, 10, 2, "unbond", [c1]), wrong, (addr, 500, UNBONDING)),  # already unbonding
        (dep(cfg, 3, 11, 0, "withdraw", [c1]), 0, (addr, 500, WITHDRAWN)),
        (dep(cfg, 4, 11, 1, "slash", [c1]), wrong, (addr, 500, WITHDRAWN)),
        (dep(cfg, 5, 12, 0, "stake", stake_args(K1, 7, addr)), 0, (addr, 7, STAKED)),  # re-stake
        (dep(cfg, 6, 12, 1, "stake", stake_args(K1, 8, addr)), bound, (addr, 7, STAKED)),
        (dep(cfg, 7, 12, 2, "slash", [c1]), 0, (addr, 7, SLASHED)),
        (dep(cfg, 8, 12, 3, "withdraw", [c1]), wrong, (addr, 7, SLASHED)),
        (dep(cfg, 9, 12, 4, "stake", stake_args(K1, 9, addr)), bound, (addr, 7, SLASHED)),
    ]
    for tx, code, record_after in steps:
        result = chain.build_and_commit([tx])
        assert codes(result) == [], tx
        # each fault has its own code: a stake of a bound key, a move its status forbids
        assert [(r.status, r.code) for r in result.receipts] == [(int(code == 0), code)], tx
        assert _stake(chain, c1) == record_after
    # unbonding can be slashed; events about unknown keys fail with NOT_STAKED
    result = chain.build_and_commit(
        [
            dep(cfg, 10, 13, 0, "stake", stake_args(K2, 1, addr)),
            dep(cfg, 11, 13, 1, "unbond", [c2]),
            dep(cfg, 12, 13, 2, "slash", [c2]),
            dep(cfg, 13, 13, 3, "withdraw", [c3]),
        ]
    )
    assert codes(result) == []
    assert [(r.status, r.code) for r in result.receipts] == [
        (1, 0),
        (1, 0),
        (1, 0),
        (0, Code.NOT_STAKED),
    ]
    assert _stake(chain, c2) == (addr, 1, SLASHED)
    assert _stake(chain, c3) is None
    assert state_get(chain, state_keys.L1_DEPOSIT_COUNT) == encoding.encode(14)
    assert_proves(chain, state_keys.stake(c2), StakeRecord(addr, 1, SLASHED).encode())


def test_a_stake_counts_only_with_its_keys_binding(chain: Any) -> None:
    """Front-running a stake (issue 11): an attacker who saw a key stakes it first from its own
    account, with the victim's binding (which names the victim's account) or with none. The
    stake does not count (no record: the key can take no part, so it earns nothing), and its
    unbond is released at once (the attacker gets back only its own deposit)."""
    cfg = chain.config
    victim, attacker = b"\x11" * 20, b"\x22" * 20
    copied = bound_stake(K1, victim, 100)
    stolen = [copied[0], attacker, 100, copied[3]]
    wrong_chain = bound_stake(K1, attacker, 100, chain_id=cfg.chain_id + 1)
    forged = [pub(K1), attacker, 100, bytes(64)]
    txs = [dep(cfg, i, 10, i, "stake", a) for i, a in enumerate((stolen, wrong_chain, forged))]
    result = chain.build_and_commit(txs)
    assert [(r.status, r.code) for r in result.receipts] == [(0, Code.STAKE_BINDING_INVALID)] * 3
    assert _stake(chain, pub(K1)) is None
    result = chain.build_and_commit([dep(cfg, 3, 11, 0, "unbond", [pub(K1)])])
    assert [(r.status, r.code) for r in result.receipts] == [(1, 0)]
    assert state_get(chain, state_keys.release(pub(K1))) == (11).to_bytes(8, "big")
    # the key's own binding to its owner's account counts
    result = chain.build_and_commit([dep(cfg, 4, 12, 0, "stake", bound_stake(K2, victim, 5))])
    assert [(r.status, r.code) for r in result.receipts] == [(1, 0)]
    assert _stake(chain, pub(K2)) == (victim, 5, STAKED)


def test_l1_deposit_blocks_verify(chain: Any) -> None:
    cfg = chain.config
    txs = [
        dep(cfg, 0, 1, 0, "stake", stake_args(K1)),
        dep(cfg, 1, 1, 1, "unbond", [pub(K1)]),
        dep(cfg, 2, 2, 0, "withdraw", [b"\x09" * 32]),
    ]
    result = chain.build(txs)
    writes, receipts = chain.verify(Block.decode(result.block.encode()))
    assert writes == result.writes and receipts == result.receipts


def test_l1_deposit_ordering_enforced(chain: Any) -> None:
    cfg = chain.config
    c = pub(K1)
    first = dep(cfg, 0, 10, 5, "stake", stake_args(K1))
    same_event = dep(cfg, 1, 10, 5, "unbond", [c])
    earlier_log = dep(cfg, 1, 10, 4, "unbond", [c])
    earlier_block = dep(cfg, 1, 9, 9, "unbond", [c])
    wrong_nonce = dep(cfg, 0, 10, 6, "unbond", [c])
    gap_nonce = dep(cfg, 2, 10, 6, "unbond", [c])
    ok = dep(cfg, 1, 10, 6, "unbond", [c])
    result = chain.build(
        [first, same_event, earlier_log, earlier_block, wrong_nonce, gap_nonce, ok]
    )
    assert list(result.block.txs) == [first, ok]
    assert codes(result) == [
        Code.INVALID_PAYLOAD,
        Code.INVALID_PAYLOAD,
        Code.INVALID_PAYLOAD,
        Code.NONCE_TOO_LOW,
        Code.NONCE_TOO_HIGH,
    ]
    chain.commit(result)
    assert _stake(chain, c) == (b"\xaa" * 20, 100, UNBONDING)
    assert state_get(chain, state_keys.L1_DEPOSIT_COUNT) == encoding.encode(2)
    assert state_get(chain, state_keys.L1_LAST_EVENT) == encoding.encode([10, 6])
    # the ordering holds across blocks too
    later = chain.build([dep(cfg, 2, 10, 6, "withdraw", [c]), dep(cfg, 2, 10, 7, "withdraw", [c])])
    assert codes(later) == [Code.INVALID_PAYLOAD]
    assert len(later.block.txs) == 1


def test_out_of_order_deposit_in_a_block_is_invalid(chain: Any, sequencer_key: SigningKey) -> None:
    cfg = chain.config
    c = pub(K1)
    txs = [dep(cfg, 0, 10, 5, "stake", stake_args(K1)), dep(cfg, 1, 10, 5, "unbond", [c])]
    result = chain.build(txs[:1])
    forced = resign(
        Block(result.block.header, ZERO_SIGNATURE, tuple(txs)), sequencer_key, tx_root=tx_root(txs)
    )
    with pytest.raises(BlockInvalid, match="tx 1: l1 events must arrive in increasing order"):
        chain.verify(forced)


def test_l1_ordering_survives_failed_deposit(chain: Any) -> None:
    cfg = chain.config
    unknown = b"\x02" * 32
    result = chain.build_and_commit(
        [
            dep(cfg, 0, 10, 0, "stake", stake_args(K1)),
            dep(cfg, 1, 12, 0, "withdraw", [unknown]),  # included, fails: NOT_STAKED
        ]
    )
    assert [(r.status, r.code) for r in result.receipts] == [(1, 0), (0, Code.NOT_STAKED)]
    # (11, 0) comes before (12, 0), which the chain has already consumed
    late = chain.build([dep(cfg, 2, 11, 0, "stake", stake_args(K3))])
    assert codes(late) == [Code.INVALID_PAYLOAD]


# -- genesis ---------------------------------------------------------------------


def test_genesis_with_stakes(config: ChainConfig, store_cls: Any) -> None:
    stakes = tuple(
        GenesisStake(bytes([i]) * 32, bytes([i + 100]) * 20, 1000 * i) for i in range(1, 6)
    )
    g1, w1 = genesis_block(store_cls(), config, Genesis(timestamp_ms=42, stakes=stakes))
    g2, w2 = genesis_block(store_cls(), config, Genesis(timestamp_ms=42, stakes=stakes[::-1]))
    assert g1.hash == g2.hash and w1 == w2
    assert g1.header.state_root != ZERO_HASH
    assert g1.header.height == 0 and g1.header.parent_hash == ZERO_HASH
    assert g1.header.timestamp_ms == 42 and g1.txs == ()
    assert g1.header.sequencer == config.sequencer
    store = store_cls()
    store.commit(w1)
    for s in stakes:
        value = StakeRecord(s.l1_address, s.amount, STAKED).encode()
        assert store.get(STATE_PREFIX + state_keys.stake(s.client_key)) == value
        proof = SparseMerkleTree(store).prove(g1.header.state_root, state_keys.stake(s.client_key))
        assert proof.leaf is not None and proof.leaf[1] == value_hash(value)
        assert verify_proof(g1.header.state_root, state_keys.stake(s.client_key), value, proof)
    # anything that differs gives another chain
    changed = (dataclasses.replace(stakes[0], amount=1), *stakes[1:])
    assert genesis_block(store_cls(), config, Genesis(42, changed))[0].hash != g1.hash
    assert genesis_block(store_cls(), config, Genesis(43, stakes))[0].hash != g1.hash
    other_cfg = dataclasses.replace(config, chain_id=config.chain_id + 1)
    assert genesis_block(store_cls(), other_cfg, Genesis(42, stakes))[0].hash != g1.hash


def test_genesis_without_stakes(config: ChainConfig, store_cls: Any) -> None:
    g, writes = genesis_block(store_cls(), config, Genesis())
    # no stakes, but the chain spec: the state is not empty
    assert STATE_PREFIX + state_keys.CHAIN_SPEC in writes and g.header.state_root != ZERO_HASH
    assert g.header.tx_root == ZERO_HASH and g.header.receipts_root == ZERO_HASH
    assert g.signature == ZERO_SIGNATURE


@pytest.mark.parametrize(
    "field", ["max_tx_size", "max_block_txs", "max_record_size", "max_blob_size"]
)
def test_genesis_commits_the_chain_spec(config: ChainConfig, store_cls: Any, field: str) -> None:
    """Issue 11: the limits were not in the genesis hash, so a verifier took them on the
    sequencer's word. The genesis state holds them (``chain/spec``), proven against its root,
    and one limit changed is another genesis root (which the L1's MPSRollup would not hold)."""
    g, writes = genesis_block(store_cls(), config, Genesis())
    store = store_cls()
    store.commit(writes)
    raw = store.get(STATE_PREFIX + state_keys.CHAIN_SPEC)
    assert raw is not None
    spec = ChainSpec.decode(raw)
    lim = config.limits
    assert (spec.chain_id, spec.sequencer) == (config.chain_id, config.sequencer)
    assert getattr(spec, field) == getattr(lim, field)
    proof = SparseMerkleTree(store).prove(g.header.state_root, state_keys.CHAIN_SPEC)
    assert verify_proof(g.header.state_root, state_keys.CHAIN_SPEC, raw, proof)
    other = dataclasses.replace(
        config, limits=dataclasses.replace(lim, **{field: getattr(lim, field) - 1})
    )
    assert genesis_block(store_cls(), other, Genesis())[0].header.state_root != g.header.state_root


def test_genesis_stakes_can_be_used(make_chain: Any) -> None:
    client = b"\x07" * 32
    chain = make_chain(Genesis(stakes=(GenesisStake(client, b"\x01" * 20, 10),)))
    cfg = chain.config
    result = chain.build_and_commit([dep(cfg, 0, 1, 0, "unbond", [client])])
    assert [r.status for r in result.receipts] == [1]
    assert _stake(chain, client) == (b"\x01" * 20, 10, UNBONDING)


def test_receipt_round_trip() -> None:
    r = Receipt(b"\x01" * 32, 5, 2, 0, int(Code.EXECUTION_FAILED), "boom")
    assert Receipt.decode(r.encode()) == r
