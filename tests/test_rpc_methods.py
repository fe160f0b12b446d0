"""Every mps_ method over HTTP, and every mempool rejection through mps_sendTransaction."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib

import pytest
from rpc_fixtures import MSGPACK, NodeHarness, hx, record_tx, start_node, unhex

from client_sdk.keys import Keypair
from client_sdk.proofs import ProofError, checked_value
from client_sdk.tx import put_blob
from stf import encoding, state_keys
from stf.errors import Code
from stf.genesis import GenesisStake
from stf.hashing import ZERO_HASH
from stf.smt import Proof, verify_proof
from stf.stakes import STAKED, StakeRecord
from stf.tx import ZERO_SENDER, ZERO_SIGNATURE, Transaction, make_tx
from stf.txtypes import l1_deposit, record


@pytest.fixture
async def h(tmp_path):
    async with start_node(tmp_path / "n") as harness:
        yield harness


def local_proof(resp: dict) -> tuple[bytes, bytes, bytes | None, Proof]:
    """(root, key, value, proof) from a JSON mps_getProof answer."""
    p = resp["proof"]
    leaf = None if p["leaf"] is None else (unhex(p["leaf"][0]), unhex(p["leaf"][1]))
    proof = Proof(tuple(unhex(s) for s in p["siblings"]), leaf)
    value = None if resp["value"] is None else unhex(resp["value"])
    return unhex(resp["stateRoot"]), unhex(resp["key"]), value, proof


# -- chain and blocks ---------------------------------------------------------
async def test_concurrent_block_productions_take_turns(h: NodeHarness):
    """Two callers of produce_block at once (the loop and a test, or a deadline) once built two
    blocks on one parent, and the index kept the loser's writes: the second now builds on the
    first's block, and every written value is in the head's proven state."""
    kp = Keypair.generate()
    await h.send_ok(record_tx(kp, 0, "a"))
    first = asyncio.ensure_future(h.node.sequencer.produce_block())
    await asyncio.sleep(0)  # the first is in its build; the second waits its turn
    await h.send_ok(record_tx(kp, 1, "b"))
    second = await h.node.sequencer.produce_block()
    sealed = await first
    assert sealed is not None and second is not None
    assert second.block.height == sealed.block.height + 1
    assert second.block.header.parent_hash == sealed.block.hash
    for name in ("a", "b"):
        key = state_keys.record(kp.public_key, name)
        resp = await h.result("mps_getProof", hx(key), "latest")
        assert checked_value(resp) == b"v", name


async def test_chain_id_and_block_number(tmp_path):
    async with start_node(tmp_path / "n", chain_id=777) as h:
        assert await h.result("mps_chainId") == 777
        assert await h.result("mps_blockNumber") == 0
        kp = Keypair.generate()
        await h.send_ok(record_tx(kp, 0, chain_id=777))
        assert await h.result("mps_blockNumber") == 0  # pending does not move the head
        await h.seal()
        assert await h.result("mps_blockNumber") == 1


async def test_get_block_by_number(h: NodeHarness):
    genesis = await h.result("mps_getBlockByNumber", 0)
    assert genesis["height"] == 0
    assert genesis["parentHash"] == hx(ZERO_HASH)
    assert genesis["transactions"] == []
    assert genesis["chainId"] == 4242
    assert genesis["sequencer"] == hx(h.node.sequencer.chain.sequencer)
    assert await h.result("mps_getBlockByNumber", "earliest") == genesis
    assert await h.result("mps_getBlockByNumber", "latest") == genesis

    kp = Keypair.generate()
    txs = [record_tx(kp, n, f"k{n}", b"x" * n) for n in range(3)]
    for tx in txs:
        await h.send_ok(tx)
    sealed = await h.seal()
    latest = await h.result("mps_getBlockByNumber", "latest")
    assert latest == await h.result("mps_getBlockByNumber", 1)
    assert latest == await h.result("mps_getBlockByNumber", "0x1")
    assert latest["height"] == 1
    assert latest["hash"] == hx(sealed.block.hash)
    assert latest["parentHash"] == genesis["hash"]
    assert latest["stateRoot"] == hx(sealed.block.header.state_root)
    assert latest["stateRoot"] != genesis["stateRoot"]
    assert latest["transactions"] == [hx(tx.hash) for tx in txs]
    assert set(latest) >= {
        "timestamp",
        "l1Origin",
        "txRoot",
        "receiptsRoot",
        "signature",
    }
    # safe and finalized stay at genesis for now
    assert (await h.result("mps_getBlockByNumber", "safe"))["height"] == 0
    assert (await h.result("mps_getBlockByNumber", "finalized"))["height"] == 0

    full = await h.result("mps_getBlockByNumber", 1, True)
    assert {k: v for k, v in full.items() if k != "transactions"} == {
        k: v for k, v in latest.items() if k != "transactions"
    }
    for i, (view, tx) in enumerate(zip(full["transactions"], txs, strict=True)):
        assert view["hash"] == hx(tx.hash)
        assert view["raw"] == hx(tx.encode())
        assert view["sender"] == hx(kp.public_key)
        assert view["nonce"] == i
        assert view["type"] == 1 and view["typeName"] == "put_record"
        assert view["blockHeight"] == 1 and view["index"] == i
        assert view["payload"] == hx(tx.payload)


@pytest.mark.parametrize("height", [1, 2, 1000])
async def test_get_block_unknown_height(h: NodeHarness, height):
    err = await h.error("mps_getBlockByNumber", height)
    assert err["code"] == Code.NOT_FOUND == 1200
    assert str(height) in err["message"] and "not found" in err["message"]
    assert err["data"] == {"name": "NOT_FOUND"}


async def test_get_block_by_hash(h: NodeHarness):
    await h.send_ok(record_tx(Keypair.generate(), 0))
    sealed = await h.seal()
    by_hash = await h.result("mps_getBlockByHash", hx(sealed.block.hash))
    assert by_hash == await h.result("mps_getBlockByNumber", 1)
    full = await h.result("mps_getBlockByHash", hx(sealed.block.hash), True)
    assert full["transactions"][0]["hash"] == hx(sealed.block.txs[0].hash)
    genesis = await h.result("mps_getBlockByNumber", 0)
    assert await h.result("mps_getBlockByHash", genesis["hash"]) == genesis
    err = await h.error("mps_getBlockByHash", hx(b"\x42" * 32))
    assert err["code"] == 1200 and "42" * 32 in err["message"]


# -- transactions ---------------------------------------------------------------
async def test_send_and_follow_a_transaction(h: NodeHarness):
    kp = Keypair.generate()
    tx = record_tx(kp, 0, "name", b"value")
    resp = await h.send(tx)
    assert resp["result"] == hx(tx.hash)

    pending = await h.result("mps_getTransaction", hx(tx.hash))
    assert pending["hash"] == hx(tx.hash)
    assert pending["blockHeight"] is None and pending["index"] is None
    assert pending["raw"] == hx(tx.encode())
    assert pending["signature"] == hx(tx.signature)
    assert pending["chainId"] == 4242
    assert await h.result("mps_getTransactionReceipt", hx(tx.hash)) is None

    # a second tx so the first one's index is checked against a non-trivial block
    other = record_tx(Keypair.generate(), 0)
    await h.send_ok(other)
    sealed = await h.seal()
    index = [t.hash for t in sealed.block.txs].index(tx.hash)

    sealed_view = await h.result("mps_getTransaction", hx(tx.hash))
    assert sealed_view["blockHeight"] == 1 and sealed_view["index"] == index
    assert {k: v for k, v in sealed_view.items() if k not in ("blockHeight", "index")} == {
        k: v for k, v in pending.items() if k not in ("blockHeight", "index")
    }
    rc = await h.result("mps_getTransactionReceipt", hx(tx.hash))
    assert rc["status"] == 1
    assert rc["code"] == 0 and rc["codeName"] is None
    assert rc["txHash"] == hx(tx.hash)
    assert rc["blockHeight"] == 1 and rc["index"] == index
    assert rc["blockHash"] == hx(sealed.block.hash)

    unknown = hx(b"\x07" * 32)
    assert (await h.error("mps_getTransaction", unknown))["code"] == 1200
    assert (await h.error("mps_getTransactionReceipt", unknown))["code"] == 1200


async def test_failed_execution_receipt(h: NodeHarness):
    kp = Keypair.generate()
    await h.send_ok(put_blob(kp, 4242, 0, b"blob-data"))
    await h.seal()
    dup = put_blob(kp, 4242, 1, b"blob-data")  # same blob again: included, status 0
    await h.send_ok(dup)
    await h.seal()
    rc = await h.result("mps_getTransactionReceipt", hx(dup.hash))
    assert rc["status"] == 0
    assert rc["code"] == Code.BLOB_ALREADY_STORED and rc["codeName"] == "BLOB_ALREADY_STORED"
    assert "already stored" in rc["message"]
    assert await h.result("mps_getNonce", hx(kp.public_key)) == 2


async def test_get_nonce(h: NodeHarness):
    kp = Keypair.generate()
    sender = hx(kp.public_key)
    assert await h.result("mps_getNonce", sender) == 0
    assert await h.result("mps_getNonce", sender, True) == 0
    for n in range(3):
        await h.send_ok(record_tx(kp, n))
    await h.send_ok(record_tx(kp, 5))  # a gap: not counted by pending
    assert await h.result("mps_getNonce", sender) == 0
    assert await h.result("mps_getNonce", sender, False) == 0
    assert await h.result("mps_getNonce", sender, True) == 3
    await h.seal()
    assert await h.result("mps_getNonce", sender) == 3
    assert await h.result("mps_getNonce", sender, True) == 3
    await h.send_ok(record_tx(kp, 3))
    await h.send_ok(record_tx(kp, 4))
    assert await h.result("mps_getNonce", sender, True) == 6
    assert await h.result("mps_getNonce", sender) == 3


async def test_get_proof(h: NodeHarness):
    kp = Keypair.generate()
    for n in range(4):
        await h.send_ok(record_tx(kp, n, f"r{n}", f"first-{n}".encode()))
    b1 = await h.seal()
    key = state_keys.record(kp.public_key, "r1")

    resp = await h.result("mps_getProof", hx(key))
    assert resp["value"] == hx(b"first-1")
    assert resp["height"] == 1
    assert resp["blockHash"] == hx(b1.block.hash)
    assert resp["stateRoot"] == hx(b1.block.header.state_root)
    root, k, value, proof = local_proof(resp)
    assert k == key
    assert verify_proof(root, key, value, proof)
    assert not verify_proof(root, key, b"first-2", proof)
    assert not verify_proof(root, key, None, proof)
    assert checked_value(resp) == b"first-1"
    assert checked_value(resp, b1.block.header.state_root) == b"first-1"

    # the nonce is in state too, as its canonical encoding
    nonce_resp = await h.result("mps_getProof", hx(state_keys.nonce(kp.public_key)), "latest")
    assert encoding.decode(checked_value(nonce_resp)) == 4

    # non-inclusion
    absent_key = state_keys.record(kp.public_key, "never-written")
    absent = await h.result("mps_getProof", hx(absent_key))
    assert absent["value"] is None
    root, _, _, proof = local_proof(absent)
    assert verify_proof(root, absent_key, None, proof)
    assert not verify_proof(root, absent_key, b"anything", proof)
    assert checked_value(absent) is None

    # change the value; the block-1 proof still verifies against block 1's root
    await h.send_ok(record_tx(kp, 4, "r1", b"second"))
    b2 = await h.seal()
    assert (await h.result("mps_getProof", hx(key)))["value"] == hx(b"second")
    old = await h.result("mps_getProof", hx(key), 1)
    assert old["height"] == 1 and old["value"] == hx(b"first-1")
    assert old["stateRoot"] == hx(b1.block.header.state_root)
    assert checked_value(old, b1.block.header.state_root) == b"first-1"
    with pytest.raises(ProofError):
        checked_value(old, b2.block.header.state_root)
    # genesis (empty state): proven absent
    at_genesis = await h.result("mps_getProof", hx(key), "earliest")
    assert at_genesis["value"] is None and checked_value(at_genesis) is None
    # an empty record value deletes: proven absent at the head
    await h.send_ok(record_tx(kp, 5, "r1", b""))
    await h.seal()
    assert checked_value(await h.result("mps_getProof", hx(key))) is None
    # unknown height
    assert (await h.error("mps_getProof", hx(key), 99))["code"] == 1200


async def test_get_stake_with_genesis_stakes(tmp_path):
    client_a, client_b = b"\x0a" * 32, b"\x0b" * 32
    stakes = (GenesisStake(client_a, b"\x01" * 20, 1000), GenesisStake(client_b, b"\x02" * 20, 5))
    async with start_node(tmp_path / "n", genesis_stakes=stakes) as h:
        assert await h.result("mps_getStake", hx(client_a)) == {
            "l1Address": hx(b"\x01" * 20),
            "amount": "1000",  # wei, a decimal string (an L1 uint256)
            "status": STAKED,
            "releasePending": None,  # no unbonding held back, none released, no slash evidence
            "released": None,
            "convictedIn": None,
        }
        assert (await h.result("mps_getStake", hx(client_b)))["amount"] == "5"
        assert await h.result("mps_getStake", hx(b"\x0c" * 32)) is None
        assert (await h.error("mps_getStake", hx(b"\x0c" * 5)))["code"] == -32602
        # genesis stakes are in the proven state
        proof = await h.result("mps_getProof", hx(state_keys.stake(client_a)), 0)
        assert checked_value(proof) == StakeRecord(b"\x01" * 20, 1000, STAKED).encode()


async def test_sync_status(h: NodeHarness):
    status = await h.result("mps_syncStatus")
    assert set(status) == {"unsafe", "safe", "finalized", "mempool"}
    genesis = await h.result("mps_getBlockByNumber", 0)
    for head in ("unsafe", "safe", "finalized"):
        assert status[head] == {
            "height": 0,
            "hash": genesis["hash"],
            "stateRoot": genesis["stateRoot"],
            "timestamp": genesis["timestamp"],
        }
    assert status["mempool"] == 0
    kp = Keypair.generate()
    await h.send_ok(record_tx(kp, 0))
    await h.send_ok(record_tx(kp, 1))
    assert (await h.result("mps_syncStatus"))["mempool"] == 2
    sealed = await h.seal()
    status = await h.result("mps_syncStatus")
    assert status["unsafe"]["height"] == 1
    assert status["unsafe"]["hash"] == hx(sealed.block.hash)
    assert status["safe"]["height"] == 0 and status["finalized"]["height"] == 0
    assert status["mempool"] == 0


# -- mempool rejections -------------------------------------------------------------
class Rejections:
    """Accepted txs before each rejection, checked to survive and be sealed."""

    def __init__(self, h: NodeHarness) -> None:
        self.h = h
        self.accepted: list[Transaction] = []

    async def accept(self, tx: Transaction) -> None:
        await self.h.send_ok(tx)
        self.accepted.append(tx)

    async def reject(self, tx: Transaction | bytes, code: Code, *words: str) -> dict:
        before = len(self.h.mempool)
        resp = await self.h.send(tx)
        assert "error" in resp, resp
        err = resp["error"]
        assert err["code"] == int(code), err
        assert err["data"] == {"name": code.name}
        for w in words:
            assert w in err["message"], (w, err["message"])
        assert len(self.h.mempool) == before
        await self.check_kept()
        return err

    async def check_kept(self) -> None:
        for tx in self.accepted:
            if self.h.node.storage.tx_location(tx.hash) is None:
                assert tx.hash in self.h.mempool

    async def check_sealed(self) -> None:
        while len(self.h.mempool):
            if await self.h.node.sequencer.produce_block() is None:
                break
        for tx in self.accepted:
            rc = await self.h.result("mps_getTransactionReceipt", hx(tx.hash))
            assert rc is not None and rc["status"] == 1, (tx, rc)


@pytest.fixture
async def rj(h: NodeHarness):
    r = Rejections(h)
    yield r
    await r.check_sealed()


async def test_reject_bad_signature(rj: Rejections):
    kp = Keypair.generate()
    await rj.accept(record_tx(kp, 0))
    good = record_tx(kp, 1)
    bad_sig = bytes([good.signature[0] ^ 1]) + good.signature[1:]
    await rj.reject(
        dataclasses.replace(good, signature=bad_sig), Code.INVALID_SIGNATURE, "signature"
    )
    # signed by another key than the sender
    other = Keypair.generate()
    unsigned = Transaction(4242, 1, kp.public_key, 1, record.payload("a", b"b"))
    forged = dataclasses.replace(unsigned, signature=other.sign(unsigned.hash))
    await rj.reject(forged, Code.INVALID_SIGNATURE, "signature")
    await rj.accept(good)


async def test_reject_wrong_chain_id(rj: Rejections):
    kp = Keypair.generate()
    await rj.accept(record_tx(kp, 0))
    await rj.reject(record_tx(kp, 1, chain_id=1), Code.WRONG_CHAIN_ID, "chain 1", "4242")


async def test_reject_nonce_too_low(rj: Rejections, h: NodeHarness):
    kp = Keypair.generate()
    await rj.accept(record_tx(kp, 0))
    await rj.accept(record_tx(kp, 1))
    await h.seal()
    await rj.accept(record_tx(kp, 2))
    await rj.reject(record_tx(kp, 0, value=b"again"), Code.NONCE_TOO_LOW, "nonce 0", "2")
    await rj.reject(record_tx(kp, 1, value=b"again"), Code.NONCE_TOO_LOW, "nonce 1", "2")


async def test_reject_already_known(rj: Rejections, h: NodeHarness):
    kp = Keypair.generate()
    tx = record_tx(kp, 0)
    await rj.accept(tx)
    err = await rj.reject(tx, Code.ALREADY_KNOWN, "already known", tx.hash.hex())
    assert "known" in err["message"]
    # the same bytes again, as raw
    await rj.reject(tx.encode(), Code.ALREADY_KNOWN)
    await h.seal()
    await rj.accept(record_tx(kp, 1))
    # sealed: still known, not reported as a low nonce
    await rj.reject(tx, Code.ALREADY_KNOWN, tx.hash.hex())


async def test_reject_nonce_too_far_ahead(tmp_path):
    async with start_node(tmp_path / "n", max_nonce_gap=4) as h:
        rj = Rejections(h)
        kp = Keypair.generate()
        await rj.accept(record_tx(kp, 0))
        await rj.accept(record_tx(kp, 3))  # gap - 1 ahead is fine
        await rj.reject(record_tx(kp, 4), Code.NONCE_TOO_HIGH, "nonce 4", "too far ahead")
        await rj.reject(record_tx(kp, 1000), Code.NONCE_TOO_HIGH, "nonce 1000")
        await rj.accept(record_tx(kp, 1))
        await rj.accept(record_tx(kp, 2))
        await h.seal()
        # the window moves with the account nonce
        await rj.accept(record_tx(kp, 7))
        await rj.reject(record_tx(kp, 8), Code.NONCE_TOO_HIGH, "nonce 8", "account nonce 4")
        await rj.accept(record_tx(kp, 4))
        await rj.accept(record_tx(kp, 5))
        await rj.accept(record_tx(kp, 6))
        await rj.check_sealed()


@pytest.mark.parametrize(
    "raw",
    [
        b"\x01\x02",  # not a list
        b"\x92\x01\x02",  # wrong fields
        record_tx(Keypair.generate(), 0).encode() + b"\x00",  # trailing bytes
        record_tx(Keypair.generate(), 0).encode()[:-1],  # truncated
        b"",
    ],
)
async def test_reject_malformed(rj: Rejections, raw):
    await rj.accept(record_tx(Keypair.generate(), 0))
    await rj.reject(raw, Code.MALFORMED_TX, "malformed")


async def test_reject_malformed_non_canonical(rj: Rejections):
    kp = Keypair.generate()
    await rj.accept(record_tx(kp, 0))
    tx = record_tx(kp, 1)
    # re-encode the nonce 1 as a uint64 (0xcf...): the same value, not the canonical bytes
    head = b"\x95" + encoding.encode(tx.chain_id) + encoding.encode(1) + encoding.encode(tx.sender)
    body = head + encoding.encode(1) + encoding.encode(tx.payload)
    assert body == tx.body
    long_body = head + b"\xcf" + (1).to_bytes(8, "big") + encoding.encode(tx.payload)
    raw = b"\x92" + long_body + b"\xc4\x40" + tx.signature
    await rj.reject(raw, Code.MALFORMED_TX, "canonical")


async def test_reject_unknown_type(rj: Rejections):
    kp = Keypair.generate()
    await rj.accept(record_tx(kp, 0))
    tx = make_tx(kp.signing_key, 4242, 99, 1, record.payload("a", b"b"))
    await rj.reject(tx, Code.UNKNOWN_TX_TYPE, "99")


async def test_reject_payload_too_large(tmp_path):
    async with start_node(tmp_path / "n", max_tx_size=400, max_record_size=64) as h:
        rj = Rejections(h)
        kp = Keypair.generate()
        await rj.accept(record_tx(kp, 0, value=b"x" * 64))
        big = put_blob(kp, 4242, 1, b"y" * 500)
        await rj.reject(big, Code.PAYLOAD_TOO_LARGE, str(len(big.encode())), "400")
        await rj.reject(record_tx(kp, 1, value=b"x" * 65), Code.PAYLOAD_TOO_LARGE, "65", "64")
        await rj.accept(put_blob(kp, 4242, 1, b"y" * 200))
        await rj.check_sealed()


async def test_reject_privileged(rj: Rejections):
    kp = Keypair.generate()
    await rj.accept(record_tx(kp, 0))
    payload = l1_deposit.payload(1, 0, "stake", [b"\x01" * 32, b"\x02" * 20, 10, bytes(64)])
    deposit = Transaction(4242, 0, ZERO_SENDER, 0, payload, ZERO_SIGNATURE)
    await rj.reject(deposit, Code.PRIVILEGED_TX, "l1_deposit", "sequencer")
    # a signed deposit from a user key is refused just the same
    signed = make_tx(kp.signing_key, 4242, 0, 1, payload)
    await rj.reject(signed, Code.PRIVILEGED_TX, "l1_deposit")


async def test_reject_mempool_full(tmp_path):
    async with start_node(tmp_path / "n", mempool_max_txs=2) as h:
        rj = Rejections(h)
        a, b = Keypair.generate(), Keypair.generate()
        await rj.accept(record_tx(a, 0))
        await rj.accept(record_tx(b, 0))
        await rj.reject(record_tx(a, 1), Code.MEMPOOL_FULL, "full")
        await rj.reject(record_tx(Keypair.generate(), 0), Code.MEMPOOL_FULL, "full")
        await h.seal()
        await rj.accept(record_tx(a, 1))
        await rj.check_sealed()


async def test_reject_mempool_full_by_bytes(tmp_path):
    async with start_node(tmp_path / "n", mempool_max_bytes=400) as h:
        rj = Rejections(h)
        kp = Keypair.generate()
        await rj.accept(record_tx(kp, 0, value=b"a" * 100))
        await rj.reject(record_tx(kp, 1, value=b"a" * 200), Code.MEMPOOL_FULL, "full")
        await rj.accept(record_tx(kp, 1, value=b"a" * 10))
        await rj.check_sealed()


@pytest.mark.parametrize(
    ("tx_type", "payload", "words"),
    [
        (1, record.payload("", b"v"), ("record name",)),
        (1, record.payload("bad\nname", b"v"), ("printable",)),
        (1, encoding.encode(["only-name"]), ("put_record",)),
        (1, b"\xc1", ("put_record",)),
        (2, encoding.encode([b""]), ("empty",)),
        (2, encoding.encode(["not bytes"]), ("blob",)),
    ],
)
async def test_reject_invalid_payload(rj: Rejections, tx_type, payload, words):
    kp = Keypair.generate()
    await rj.accept(record_tx(kp, 0))
    tx = make_tx(kp.signing_key, 4242, tx_type, 1, payload)
    await rj.reject(tx, Code.INVALID_PAYLOAD, *words)


async def test_reject_nonce_already_pending(rj: Rejections):
    kp = Keypair.generate()
    await rj.accept(record_tx(kp, 0, value=b"first"))
    await rj.accept(record_tx(kp, 1, value=b"first"))
    await rj.reject(
        record_tx(kp, 1, value=b"second"), Code.NONCE_ALREADY_PENDING, "nonce 1", "pending"
    )
    await rj.reject(record_tx(kp, 0, value=b"second"), Code.NONCE_ALREADY_PENDING, "nonce 0")


async def test_sealed_values_are_the_first_accepted(h: NodeHarness):
    """A rejected replacement never overwrites what was accepted."""
    kp = Keypair.generate()
    await h.send_ok(record_tx(kp, 0, "k", b"first"))
    resp = await h.send(record_tx(kp, 0, "k", b"second"))
    assert resp["error"]["code"] == Code.NONCE_ALREADY_PENDING
    await h.seal()
    proof = await h.result("mps_getProof", hx(state_keys.record(kp.public_key, "k")))
    assert checked_value(proof) == b"first"


async def test_a_batch_answer_is_capped(h: NodeHarness, monkeypatch):
    """Issue 13: 100 mps_getBlob calls for one 4 MiB blob answered 839 MB of JSON. Past the
    cap the rest of the batch is answered RESPONSE_TOO_LARGE and not run."""
    from rpc import jsonrpc

    monkeypatch.setattr(jsonrpc, "MAX_BATCH_RESPONSE", 3 * 1024 * 1024)
    kp = Keypair.generate()
    blob = bytes(range(256)) * 2048  # 512 KiB: about 1 MiB as hex
    await h.send_ok(put_blob(kp, 4242, 0, blob))
    await h.seal()
    bid = hx(hashlib.sha256(blob).digest())
    batch = [
        {"jsonrpc": "2.0", "id": i, "method": "mps_getBlob", "params": [bid]} for i in range(10)
    ]
    batch.insert(5, {"jsonrpc": "2.0", "method": "mps_getBlob", "params": [bid]})  # no id
    status, out = await h.post(batch)
    assert status == 200 and [r["id"] for r in out] == list(range(10))
    answered = [r for r in out if "result" in r]
    assert len(answered) == 2 and all(unhex(r["result"]) == blob for r in answered)
    for r in out[len(answered) :]:
        assert r["error"]["code"] == Code.RESPONSE_TOO_LARGE, r
    assert "ask for fewer or smaller results" in out[-1]["error"]["message"]


async def test_transactions_behind_a_nonce_gap_cannot_pin_the_pool(tmp_path):
    """Issue 13's pinning: fresh keys sent never-executable transactions (far nonces) until the
    pool was full, and honest transactions got MEMPOOL_FULL, after a restart too. Such queued
    transactions are capped (per sender, and a quarter of the pool), and a full pool evicts
    them, newest first, for a transaction that can execute (the only acknowledged transactions
    a pool may drop: they could not run, and their sender may send them again)."""
    async with start_node(tmp_path / "n", mempool_max_txs=20) as h:
        rj = Rejections(h)
        pool = h.node.sequencer.mempool
        squatters = [Keypair.generate() for _ in range(6)]
        queued = [record_tx(kp, 3) for kp in squatters[:5]]  # max_queued = 20 // 4
        for tx in queued:
            await h.send_ok(tx)
        await rj.reject(record_tx(squatters[5], 3), Code.MEMPOOL_FULL, "nonce gap")
        assert pool.queued == 5
        for _ in range(15):
            await rj.accept(record_tx(Keypair.generate(), 0))
        assert len(pool) == 20
        for _ in range(5):  # honest transactions keep coming: each evicts a queued one
            await rj.accept(record_tx(Keypair.generate(), 0))
        assert len(pool) == 20 and pool.queued == 0
        assert not any(tx.hash in pool for tx in queued)
        await rj.reject(record_tx(Keypair.generate(), 0), Code.MEMPOOL_FULL, "full")
        await rj.check_sealed()


async def test_a_sender_queues_a_bounded_number_behind_its_gap(tmp_path):
    async with start_node(tmp_path / "n") as h:
        rj = Rejections(h)
        kp = Keypair.generate()
        limit = h.node.sequencer.mempool.limits.max_queued_per_sender
        for n in range(1, limit + 1):
            await rj.accept(record_tx(kp, n))
        await rj.reject(record_tx(kp, limit + 1), Code.MEMPOOL_FULL, "send the missing nonces")
        await rj.accept(record_tx(kp, 0))  # the gap closes: everything can execute
        assert h.node.sequencer.mempool.queued == 0
        await rj.accept(record_tx(kp, limit + 1))
        await rj.check_sealed()


@pytest.mark.parametrize(
    "body",
    [
        b"\xdd" + (16 * 1024 * 1024).to_bytes(4, "big") + b"\x90" * (16 * 1024 * 1024),
        b"\xdc\x04\x00" + (b"\xdc\x04\x00" + b"\x90" * 1024) * 1024,  # 1,024 x 1,024 arrays
        b"\xdf" + (10**6).to_bytes(4, "big") + b"\xc0\xc0" * 1000,  # a map of a million pairs
    ],
    ids=["one huge array", "many small arrays", "huge map"],
)
async def test_a_hostile_msgpack_body_is_refused_before_its_memory_is_spent(h, body):
    """Issue 13: a 64 MiB msgpack body of empty arrays took the node from 59 to ~4,700 MiB and
    blocked the loop for 20 s. Bounds on array and map lengths and on the containers in all
    stop the decode at once (and a big body decodes off the loop)."""
    status, resp = await h.post(None, MSGPACK, raw=body)
    assert status == 200 and resp["error"]["code"] == -32700, resp
    assert (
        "max_array_len" in resp["error"]["message"]
        or "max_map_len" in resp["error"]["message"]
        or "arrays and maps" in resp["error"]["message"]
    ), resp
    # an honest msgpack request still works, and the node goes on
    assert await h.result("mps_chainId", media=MSGPACK) == 4242


async def test_selecting_a_block_reads_no_sender_state(tmp_path, monkeypatch):
    """Issue 13: block building read every pending sender's nonce from the database on the
    event loop (50,000 parked senders: honest p99 13 -> 133 ms). The pool keeps each sender's
    account nonce from its admission and its last block, and selects from that."""
    async with start_node(tmp_path / "n") as h:
        pool = h.node.sequencer.mempool
        senders = [Keypair.generate() for _ in range(40)]
        for kp in senders:
            await h.send_ok(record_tx(kp, 1))  # parked behind nonce 0
        await h.send_ok(record_tx(senders[0], 0))
        await h.send_ok(record_tx(senders[1], 0))
        await h.send_ok(record_tx(senders[1], 3))  # behind a gap at 2: stays after the block
        reads = []
        real = pool.state_nonce
        monkeypatch.setattr(pool, "state_nonce", lambda s: reads.append(s) or real(s))
        picked = pool.select(100)
        assert reads == []
        assert sorted((tx.sender, tx.nonce) for tx in picked) == sorted(
            (kp.public_key, n) for kp in senders[:2] for n in (0, 1)
        )
        await h.seal()
        assert pool.select(100) == [] and len(pool) == 39
        # after the block: the nonce of the one sender still pooled, read once; none for the
        # sender whose transactions all went in
        assert reads == [senders[1].public_key]


async def test_blocks_are_built_with_the_configured_blas_threads(tmp_path, monkeypatch):
    """Issue 13: OpenBLAS sizes its pool to the machine; with other work on it a 2-thread Gram
    took 31 s instead of 0.1 s. The node builds blocks under ``blas_threads`` (default 1)."""
    from threadpoolctl import threadpool_info

    from node import sequencer as seq_module

    seen: list[list[int]] = []
    real = seq_module.build_block

    def spy(*args: object, **kw: object):
        seen.append([p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"])
        return real(*args, **kw)

    monkeypatch.setattr(seq_module, "build_block", spy)
    before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    async with start_node(tmp_path / "n") as h:
        await h.send_ok(record_tx(Keypair.generate(), 0))
        await h.seal()
    if not before:
        pytest.skip("numpy here links no BLAS that threadpoolctl sees")
    assert seen and seen[0] == [1] * len(before), seen
    assert [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"] == before
