"""client_sdk: key files, the sync and async RPC clients, typed errors, local proof checks."""

from __future__ import annotations

import asyncio
import copy
import os
import socket
import stat

import pytest
from rpc_fixtures import NodeHarness, record_tx, start_node

from client_sdk import AsyncRPCClient, KeyFileError, Keypair, MPSClient, RPCClient
from client_sdk import errors as sdk_errors
from client_sdk.proofs import ProofError, checked_value
from client_sdk.tx import put_blob, put_record
from stf import state_keys
from stf.errors import Code
from stf.tx import Transaction

run = asyncio.to_thread  # the sync clients block: call them off the loop that serves the node


@pytest.fixture
async def h(tmp_path):
    async with start_node(tmp_path / "n") as harness:
        yield harness


@pytest.fixture
async def live(tmp_path):
    """A node that seals blocks by itself every 50 ms."""
    async with start_node(tmp_path / "live", produce_blocks=True, block_time=0.05) as harness:
        yield harness


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- key files ------------------------------------------------------------------
def test_keypair_save_and_load(tmp_path):
    kp = Keypair.generate()
    path = tmp_path / "sub" / "client.key"
    old = os.umask(0)  # the file mode must not depend on the caller's umask
    try:
        kp.save(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == kp.seed.hex()
    loaded = Keypair.load(path)
    assert loaded.seed == kp.seed and loaded.public_key == kp.public_key
    assert loaded.sign(b"m") == kp.sign(b"m")


def test_keypair_save_refuses_overwrite(tmp_path):
    path = tmp_path / "k"
    first, second = Keypair.generate(), Keypair.generate()
    first.save(path)
    with pytest.raises(KeyFileError, match="already exists"):
        second.save(path)
    assert Keypair.load(path).seed == first.seed
    # an explicit overwrite replaces it, and tightens the mode
    path.chmod(0o644)
    second.save(path, overwrite=True)
    assert Keypair.load(path).seed == second.seed
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o660, 0o644, 0o601])
def test_keypair_load_refuses_shared_file(tmp_path, mode):
    path = tmp_path / "k"
    Keypair.generate().save(path)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match="other users"):
        Keypair.load(path)
    path.chmod(0o400)  # owner-only read is fine
    Keypair.load(path)


@pytest.mark.parametrize(
    "text",
    ["", "not hex at all", "ab" * 31, "ab" * 33, "0x" + "ab" * 32, "ab" * 32 + "zz"],
)
def test_keypair_load_refuses_malformed_file(tmp_path, text):
    path = tmp_path / "k"
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="32-byte hex seed"):
        Keypair.load(path)


def test_keypair_load_missing_file(tmp_path):
    with pytest.raises(KeyFileError, match="cannot read"):
        Keypair.load(tmp_path / "absent.key")


def test_keypair_load_refuses_binary_file(tmp_path):
    path = tmp_path / "k"
    path.write_bytes(b"\xff\xfe" + os.urandom(30))
    path.chmod(0o600)
    with pytest.raises(KeyFileError):
        Keypair.load(path)


def test_keypair_from_seed_checks_length():
    with pytest.raises(ValueError):
        Keypair.from_seed(b"\x00" * 31)
    kp = Keypair.from_seed(b"\x01" * 32)
    assert Keypair.from_seed(kp.seed).public_key == kp.public_key


# -- the sync client against a live node --------------------------------------------
@pytest.mark.parametrize("media", ["msgpack", "json"])
async def test_mps_client_round_trip(live: NodeHarness, media):
    client = MPSClient(live.url, media=media, timeout=5)
    assert await run(lambda: client.chain_id) == 4242
    kp = Keypair.generate()
    assert await run(client.nonce, kp.public_key) == 0
    txs = [put_record(kp, client.chain_id, n, f"rec{n}", f"val{n}".encode()) for n in range(3)]
    hashes = [await run(client.send, tx) for tx in txs]
    assert hashes == [tx.hash for tx in txs]
    assert all(isinstance(x, bytes) for x in hashes)
    receipts = [await run(client.wait_for_receipt, x, 10) for x in hashes]
    assert [rc["status"] for rc in receipts] == [1, 1, 1]
    assert await run(client.nonce, kp.public_key, False) == 3

    # state is read through verified proofs
    key = state_keys.record(kp.public_key, "rec1")
    assert await run(client.get_state, key) == b"val1"
    assert await run(client.get_state, state_keys.record(kp.public_key, "nope")) is None
    height = receipts[1]["blockHeight"]
    block = await run(client.block, height)
    assert block["height"] == height
    root = block["stateRoot"]
    root = root if isinstance(root, bytes) else bytes.fromhex(root[2:])
    assert await run(client.get_state, key, height, root) == b"val1"
    with pytest.raises(ProofError, match="different state root"):
        await run(client.get_state, key, height, b"\x13" * 32)
    # a blob, and the block view with full transactions
    blob_tx = put_blob(kp, 4242, 3, b"model-weights")
    rc = await run(client.wait_for_receipt, await run(client.send, blob_tx), 10)
    full = await run(client.block, rc["blockHeight"], True)
    assert [t["nonce"] for t in full["transactions"]] == [3]


async def test_wait_for_receipt_times_out(h: NodeHarness):
    client = MPSClient(h.url, timeout=5)
    tx = record_tx(Keypair.generate(), 0)
    await run(client.send, tx)  # never sealed: this node does not produce blocks
    with pytest.raises(TimeoutError):
        await run(client.wait_for_receipt, tx.hash, 0.2)
    await h.seal()
    assert (await run(client.wait_for_receipt, tx.hash, 1))["status"] == 1


# -- a lying node is caught ---------------------------------------------------------
async def test_checked_value_catches_tampering(h: NodeHarness):
    kp = Keypair.generate()
    for n in range(5):
        await h.send_ok(record_tx(kp, n, f"k{n}", f"v{n}".encode()))
    sealed = await h.seal()
    root = sealed.block.header.state_root
    rpc = RPCClient(h.url, "msgpack", timeout=5)
    key = state_keys.record(kp.public_key, "k2")
    honest = await run(rpc.call, "mps_getProof", key)
    assert checked_value(honest) == b"v2"
    assert checked_value(honest, root) == b"v2"

    def tampered(**changes):
        resp = copy.deepcopy(honest)
        resp.update(changes)
        return resp

    # a changed value
    with pytest.raises(ProofError, match="does not verify"):
        checked_value(tampered(value=b"v3"))
    # the value claimed absent
    with pytest.raises(ProofError):
        checked_value(tampered(value=None))
    # a proof for another key presented as this one
    with pytest.raises(ProofError):
        checked_value(tampered(key=state_keys.record(kp.public_key, "k3")))
    # a different trusted root
    with pytest.raises(ProofError, match="different state root"):
        checked_value(honest, b"\x00" * 32)
    # a claimed root that the proof does not lead to
    with pytest.raises(ProofError):
        checked_value(tampered(stateRoot=b"\x11" * 32))
    # a tampered sibling
    if honest["proof"]["siblings"]:
        resp = copy.deepcopy(honest)
        sib = resp["proof"]["siblings"][0]
        resp["proof"]["siblings"][0] = bytes([sib[0] ^ 1]) + sib[1:]
        with pytest.raises(ProofError):
            checked_value(resp)
    # a dropped leaf
    resp = copy.deepcopy(honest)
    resp["proof"]["leaf"] = None
    with pytest.raises(ProofError):
        checked_value(resp)
    # hex strings (JSON) are checked the same way
    json_resp = await run(RPCClient(h.url, "json", timeout=5).call, "mps_getProof", key)
    assert checked_value(json_resp, root) == b"v2"
    json_resp["value"] = "0x" + b"v9".hex()
    with pytest.raises(ProofError):
        checked_value(json_resp)
    # and a non-inclusion proof cannot be turned into a value
    absent = await run(rpc.call, "mps_getProof", state_keys.record(kp.public_key, "zz"))
    assert checked_value(absent, root) is None
    absent["value"] = b"made up"
    with pytest.raises(ProofError):
        checked_value(absent)


@pytest.mark.parametrize(
    "breakage",
    [
        {"proof": None},  # no proof at all
        {"proof": {"siblings": None, "leaf": None}},  # siblings not a list
        {"value": "0xabc"},  # odd-length hex
    ],
)
def test_checked_value_malformed_answer_is_proof_error(breakage):
    resp = {"key": b"k", "value": None, "stateRoot": b"\x00" * 32}
    resp["proof"] = {"siblings": [], "leaf": None}
    assert checked_value(resp) is None  # well formed: the empty tree, key absent
    resp.update(breakage)
    with pytest.raises(ProofError):
        checked_value(resp)


# -- typed errors -----------------------------------------------------------------------
@pytest.mark.parametrize("media", ["msgpack", "json"])
async def test_typed_errors(h: NodeHarness, media):
    client = MPSClient(h.url, media=media, timeout=5)
    kp = Keypair.generate()
    tx0 = record_tx(kp, 0)
    await run(client.send, tx0)
    with pytest.raises(sdk_errors.AlreadyKnown) as ei:
        await run(client.send, tx0)
    assert ei.value.code == Code.ALREADY_KNOWN
    assert tx0.hash.hex() in ei.value.message
    assert isinstance(ei.value, sdk_errors.RPCError)
    with pytest.raises(sdk_errors.NonceAlreadyPending):
        await run(client.send, record_tx(kp, 0, value=b"other"))
    await h.seal()
    with pytest.raises(sdk_errors.NonceTooLow) as ei:
        await run(client.send, record_tx(kp, 0, value=b"other"))
    assert ei.value.code == 1003 and ei.value.data == {"name": "NONCE_TOO_LOW"}
    bad = record_tx(kp, 1)
    bad = Transaction(bad.chain_id, 1, bad.sender, 1, bad.payload, b"\x01" * 64)
    with pytest.raises(sdk_errors.InvalidSignature):
        await run(client.send, bad)
    with pytest.raises(sdk_errors.NonceTooHigh):
        await run(client.send, record_tx(kp, 500))
    with pytest.raises(sdk_errors.WrongChainId):
        await run(client.send, record_tx(kp, 1, chain_id=9))
    with pytest.raises(sdk_errors.MethodNotFound) as ei:
        await run(client.rpc.call, "mps_noSuchMethod")
    assert ei.value.code == -32601
    with pytest.raises(sdk_errors.InvalidParams) as ei:
        await run(client.rpc.call, "mps_getBlockByNumber", "someday")
    assert "block" in ei.value.message
    with pytest.raises(sdk_errors.NotFound):
        await run(client.block, 42)
    with pytest.raises(sdk_errors.UnsupportedMediaType):
        await run(client.rpc.call, "mps_subscribe", "newHeads")
    # nothing rejected got in; the accepted one is sealed
    assert len(h.mempool) == 0
    assert (await run(client.receipt, tx0.hash))["status"] == 1


async def test_body_too_large_is_typed(tmp_path):
    async with start_node(tmp_path / "n", max_body_size=2048, max_tx_size=1024) as h:
        rpc = RPCClient(h.url, "msgpack", timeout=5)
        with pytest.raises(sdk_errors.BodyTooLarge) as ei:
            await run(rpc.call, "mps_sendTransaction", b"\x00" * 4096)
        assert "2048" in ei.value.message
        assert await run(rpc.call, "mps_chainId") == 4242


# -- async client -------------------------------------------------------------------------
@pytest.mark.parametrize("media", ["msgpack", "json"])
async def test_async_client(h: NodeHarness, media):
    kp = Keypair.generate()
    tx = record_tx(kp, 0, "a", b"\x00\x01raw")
    async with AsyncRPCClient(h.url, media=media, timeout=5) as rpc:
        assert await rpc.call("mps_chainId") == 4242
        got = await rpc.call("mps_sendTransaction", tx.encode())
        as_bytes = got if media == "msgpack" else bytes.fromhex(got[2:])
        assert isinstance(got, bytes if media == "msgpack" else str)
        assert as_bytes == tx.hash
        assert await rpc.call("mps_getTransactionReceipt", tx.hash) is None
        await h.seal()
        rc = await rpc.call("mps_getTransactionReceipt", tx.hash)
        assert rc["status"] == 1 and rc["blockHeight"] == 1
        view = await rpc.call("mps_getTransaction", tx.hash)
        raw = view["raw"] if media == "msgpack" else bytes.fromhex(view["raw"][2:])
        assert raw == tx.encode()
        proof = await rpc.call("mps_getProof", state_keys.record(kp.public_key, "a"))
        assert checked_value(proof) == b"\x00\x01raw"
        with pytest.raises(sdk_errors.AlreadyKnown):
            await rpc.call("mps_sendTransaction", tx.encode())
        with pytest.raises(sdk_errors.MethodNotFound):
            await rpc.call("mps_nope")
        with pytest.raises(sdk_errors.InvalidParams):
            await rpc.call("mps_getTransaction", b"\x00" * 3)
    assert rpc._session is None  # closed on exit


def test_clients_reject_unknown_media():
    with pytest.raises(ValueError):
        RPCClient("http://127.0.0.1:1/", media="xml")
    with pytest.raises(ValueError):
        AsyncRPCClient("http://127.0.0.1:1/", media="xml")


# -- transport errors -----------------------------------------------------------------------
async def test_transport_error_when_nothing_listens():
    url = f"http://127.0.0.1:{free_port()}/"
    with pytest.raises(sdk_errors.TransportError, match="cannot reach"):
        await run(RPCClient(url, timeout=2).call, "mps_chainId")
    with pytest.raises(sdk_errors.TransportError):
        await run(lambda: MPSClient(url, timeout=2).chain_id)
    for media in ("msgpack", "json"):
        async with AsyncRPCClient(url, media=media, timeout=2) as rpc:
            with pytest.raises(sdk_errors.TransportError, match="cannot reach"):
                await rpc.call("mps_chainId")


async def test_transport_error_on_non_rpc_answer(h: NodeHarness):
    # /health answers JSON that is not a JSON-RPC response
    rpc = RPCClient(str(h.client.make_url("/health")), "json", timeout=5)
    with pytest.raises(sdk_errors.TransportError):
        await run(rpc.call, "mps_chainId")
    # an HTTP error page that does not parse
    rpc = RPCClient(str(h.client.make_url("/no/such/path")), "msgpack", timeout=5)
    with pytest.raises(sdk_errors.TransportError):
        await run(rpc.call, "mps_chainId")
    async with AsyncRPCClient(str(h.client.make_url("/no/such/path")), "json", 5) as arpc:
        with pytest.raises(sdk_errors.TransportError):
            await arpc.call("mps_chainId")


def test_from_error_object_maps_every_code():
    for code in Code:
        err = sdk_errors.from_error_object({"code": int(code), "message": "m"})
        assert type(err) is not sdk_errors.RPCError, code
        assert err.code == code and type(err).code == code
    unknown = sdk_errors.from_error_object({"code": 4321, "message": "odd"})
    assert type(unknown) is sdk_errors.RPCError and unknown.code == 4321
    assert "odd" in str(unknown)


def _error_classes() -> list[type[BaseException]]:
    """Every exception class the SDK and the shared transport define."""
    import client_sdk.cli
    import client_sdk.l1
    import client_sdk.train
    import mps_common.errors
    import mps_common.keyfile

    modules = [sdk_errors, mps_common.errors, mps_common.keyfile, client_sdk.cli]
    modules += [client_sdk.l1, client_sdk.train, client_sdk.proofs]
    return [
        v
        for m in modules
        for v in vars(m).values()
        if isinstance(v, type) and issubclass(v, BaseException) and v.__module__ == m.__name__
    ]


def test_every_code_has_exactly_one_class():
    """Each application code (stf.errors.Code) and each JSON-RPC envelope code the node answers
    (stf.errors.ENVELOPE_CODES) is claimed by exactly one class, written out, not generated."""
    from mps_common import errors
    from stf.errors import ENVELOPE_CODES

    envelope = list(ENVELOPE_CODES)
    coded = [c for c in errors.RPCError.__subclasses__() if c is not errors.TransportError]
    claimed = sorted(c.code for c in coded)
    assert claimed == sorted([*map(int, Code), *envelope])  # each exactly once
    for cls in coded:
        assert cls.__module__ == "mps_common.errors" and cls.__doc__, cls
        assert errors.BY_CODE[cls.code] is cls
        assert getattr(sdk_errors, cls.__name__) is cls  # importable from client_sdk.errors


def test_every_sdk_exception_has_one_root():
    import client_sdk

    classes = _error_classes()
    assert len(classes) > 40
    for cls in classes:
        assert issubclass(cls, client_sdk.ClientError), cls
    # the builtin behaviour callers may rely on is kept
    assert issubclass(KeyFileError, OSError) and issubclass(ProofError, ValueError)
    assert issubclass(client_sdk.WaitTimeout, TimeoutError)
    assert issubclass(client_sdk.InvalidArgument, ValueError)
    # an L1 revert the SDK lets through (client_sdk.l1) is under the same root
    from contracts.reverts import ContractRevert

    assert issubclass(ContractRevert, client_sdk.ClientError)
    assert issubclass(ContractRevert, RuntimeError)
    assert issubclass(sdk_errors.TransportError, sdk_errors.RPCError)
    from stf.errors import MPSError

    assert not issubclass(client_sdk.ClientError, MPSError)
