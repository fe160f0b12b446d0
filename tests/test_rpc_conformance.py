"""JSON-RPC 2.0 conformance of POST /, plus /health and /metrics."""

from __future__ import annotations

import json
import re

import msgpack
import pytest
from rpc_fixtures import JSON, MSGPACK, NodeHarness, record_tx, start_node

from client_sdk.keys import Keypair
from stf.errors import Code


@pytest.fixture
async def h(tmp_path):
    async with start_node(tmp_path / "n") as harness:
        yield harness


def req(method: str, params=None, rid=1) -> dict:
    r = {"jsonrpc": "2.0", "method": method, "id": rid}
    if params is not None:
        r["params"] = params
    return r


def note(method: str, params=None) -> dict:
    r = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        r["params"] = params
    return r


async def test_single_call(h: NodeHarness):
    status, resp = await h.post(req("mps_chainId", rid=7))
    assert status == 200
    assert resp == {"jsonrpc": "2.0", "id": 7, "result": 4242}


async def test_batch_answers_in_order(h: NodeHarness):
    status, resp = await h.post(
        [
            req("mps_chainId", rid=1),
            req("mps_blockNumber", rid="two"),
            req("mps_nope", rid=3),
            req("mps_getBlockByNumber", [0], rid=4),
        ]
    )
    assert status == 200
    assert [r["id"] for r in resp] == [1, "two", 3, 4]
    assert resp[0]["result"] == 4242
    assert resp[1]["result"] == 0
    assert resp[2]["error"]["code"] == -32601
    assert resp[3]["result"]["height"] == 0


async def test_empty_batch_is_invalid_request(h: NodeHarness):
    status, resp = await h.post([])
    assert status == 200
    assert resp["id"] is None
    assert resp["error"]["code"] == -32600


async def test_batch_over_max_batch(tmp_path):
    async with start_node(tmp_path / "n", max_batch=3) as h:
        status, resp = await h.post([req("mps_chainId", rid=i) for i in range(3)])
        assert status == 200 and len(resp) == 3
        status, resp = await h.post([req("mps_chainId", rid=i) for i in range(4)])
        assert status == 200
        assert isinstance(resp, dict)
        assert resp["id"] is None
        assert resp["error"]["code"] == Code.BATCH_TOO_LARGE == 1301
        assert "4" in resp["error"]["message"] and "3" in resp["error"]["message"]


async def test_notification_only_gets_204(h: NodeHarness):
    kp = Keypair.generate()
    tx = record_tx(kp, 0)
    status, body = await h.post(note("mps_sendTransaction", ["0x" + tx.encode().hex()]))
    assert status == 204
    assert body is None
    # the notification was executed all the same
    assert tx.hash in h.mempool
    # a batch of notifications only: also 204 and no body
    status, body = await h.post([note("mps_chainId"), note("mps_nope")])
    assert status == 204
    assert body is None


async def test_notification_inside_batch_is_omitted(h: NodeHarness):
    status, resp = await h.post(
        [req("mps_chainId", rid=1), note("mps_blockNumber"), note("mps_nope"), req("x", rid=2)]
    )
    assert status == 200
    assert [r["id"] for r in resp] == [1, 2]
    assert resp[1]["error"]["code"] == -32601


async def test_null_id_is_answered_with_null(h: NodeHarness):
    status, resp = await h.post(req("mps_chainId", rid=None))
    assert status == 200
    assert resp == {"jsonrpc": "2.0", "id": None, "result": 4242}


async def test_string_ids_echoed(h: NodeHarness):
    for rid in ("abc", "", "0x1f", "ünïcode"):
        _, resp = await h.post(req("mps_blockNumber", rid=rid))
        assert resp["id"] == rid
        assert resp["result"] == 0


@pytest.mark.parametrize("rid", [[1], {"a": 1}, True, False])
async def test_invalid_id_type(h: NodeHarness, rid):
    status, resp = await h.post(req("mps_chainId", rid=rid))
    assert status == 200
    assert resp["id"] is None
    assert resp["error"]["code"] == -32600
    assert "id" in resp["error"]["message"]


@pytest.mark.parametrize("version", [None, "1.0", 2.0, "2"])
async def test_missing_or_wrong_jsonrpc_version(h: NodeHarness, version):
    r = {"id": 5, "method": "mps_chainId"}
    if version is not None:
        r["jsonrpc"] = version
    status, resp = await h.post(r)
    assert status == 200
    assert resp["id"] == 5
    assert resp["error"]["code"] == -32600
    assert "jsonrpc" in resp["error"]["message"]
    assert "result" not in resp


@pytest.mark.parametrize("body", [b"{", b'{"jsonrpc": "2.0",', b"\xff\xfe\x00", b"nope", b""])
async def test_parse_error(h: NodeHarness, body):
    status, resp = await h.post(None, raw=body)
    assert status == 200
    assert resp["id"] is None
    assert resp["error"]["code"] == -32700
    assert "parse" in resp["error"]["message"]


async def test_json_nested_too_deeply_is_a_parse_error(h: NodeHarness):
    """Issue 13: 1,000 levels of JSON arrays answered HTTP 500 in plain text (and 100,000, in a
    process whose recursion limit was raised, overflowed the C stack). The depth is checked
    before parsing, without recursion; 64 levels still parse."""
    for depth in (1_000, 100_000):
        status, resp = await h.post(None, raw=b"[" * depth + b"]" * depth)
        assert status == 200
        assert resp["id"] is None and resp["error"]["code"] == -32700
        assert "nested too deeply" in resp["error"]["message"]
    status, resp = await h.post(None, raw=b"[" * 64 + b"]" * 64)
    assert [r["error"]["code"] for r in resp] == [-32600]  # parsed: a batch of a non-request


async def test_msgpack_params_with_non_string_keys_are_invalid_params(h: NodeHarness):
    """Issue 13: a msgpack map with an integer key among the params gave -32603 (the node
    sorted mixed keys); it is the caller's mistake, -32602, naming the keys."""
    params = {1: "x", "zzz": 2, "sender": b"a"}
    req = {"jsonrpc": "2.0", "id": 3, "method": "mps_getNonce", "params": params}
    status, resp = await h.post(req, media=MSGPACK)
    assert status == 200
    assert resp["id"] == 3 and resp["error"]["code"] == -32602
    assert "unknown params ['zzz', 1]" in resp["error"]["message"]


async def test_parse_error_msgpack(h: NodeHarness):
    status, resp = await h.post(None, media=MSGPACK, raw=b"\xc1\xc1")
    assert status == 200
    assert resp["id"] is None
    assert resp["error"]["code"] == -32700


async def test_non_object_requests(h: NodeHarness):
    _, resp = await h.post(42)
    assert resp["error"]["code"] == -32600 and resp["id"] is None
    _, resp = await h.post([1, 2])
    assert [r["error"]["code"] for r in resp] == [-32600, -32600]
    _, resp = await h.post({"jsonrpc": "2.0", "id": 1, "method": 5})
    assert resp["error"]["code"] == -32600 and resp["id"] == 1


async def test_method_not_found(h: NodeHarness):
    err = await h.error("mps_doesNotExist")
    assert err["code"] == -32601
    assert "mps_doesNotExist" in err["message"]


@pytest.mark.parametrize(
    ("method", "params", "named"),
    [
        ("mps_getBlockByNumber", ["yesterday"], "block"),  # wrong type
        ("mps_getBlockByNumber", [-1], "block"),  # negative height
        ("mps_getBlockByNumber", [0, "yes"], "full"),  # wrong type for a bool
        ("mps_getBlockByHash", ["0x1234"], "hash"),  # wrong length
        ("mps_getBlockByHash", ["0xzz"], "hash"),  # not hex
        ("mps_chainId", [1], "at most 0"),  # too many
        ("mps_getNonce", ["0x" + "00" * 32, False, 3], "at most 2"),  # too many
        ("mps_getBlockByNumber", [], "block"),  # missing required
        ("mps_getBlockByNumber", {"full": True}, "block"),  # missing required, named
        ("mps_getBlockByNumber", {"block": 0, "fulll": True}, "fulll"),  # unknown name
        ("mps_chainId", "not-structured", "params"),  # params neither array nor object
    ],
)
async def test_invalid_params(h: NodeHarness, method, params, named):
    status, resp = await h.post(req(method, params, rid=9))
    assert status == 200
    assert resp["id"] == 9
    assert resp["error"]["code"] == -32602
    assert named in resp["error"]["message"]


async def test_named_params(h: NodeHarness):
    _, by_pos = await h.post(req("mps_getBlockByNumber", [0, False]))
    _, by_name = await h.post(req("mps_getBlockByNumber", {"full": False, "block": "earliest"}))
    assert by_name["result"] == by_pos["result"]
    # optional named params may be left out
    _, resp = await h.post(req("mps_getBlockByNumber", {"block": 0}))
    assert resp["result"] == by_pos["result"]
    kp = Keypair.generate()
    _, resp = await h.post(
        req("mps_getNonce", {"sender": "0x" + kp.public_key.hex(), "pending": True})
    )
    assert resp["result"] == 0


async def test_oversized_body(tmp_path):
    async with start_node(tmp_path / "n", max_body_size=1024, max_tx_size=512) as h:
        small = json.dumps(req("mps_chainId")).encode()
        status, resp = await h.post(None, raw=small)
        assert status == 200 and resp["result"] == 4242
        big = json.dumps(req("mps_sendTransaction", ["0x" + "ab" * 2000])).encode()
        status, resp = await h.post(None, raw=big)
        assert status == 413
        assert resp["id"] is None
        assert resp["error"]["code"] == Code.BODY_TOO_LARGE == 1300
        assert "1024" in resp["error"]["message"]

        # without a Content-Length (chunked), the cap still holds
        async def chunks():
            for _ in range(8):
                yield b" " * 512

        r = await h.client.post("/", data=chunks(), headers={"Content-Type": JSON})
        assert r.status == 413
        body = await r.json()
        assert body["error"]["code"] == 1300
        # the node still serves normal requests afterwards
        assert await h.result("mps_chainId") == 4242


@pytest.mark.parametrize("ctype", ["text/plain", "application/xml", "multipart/form-data"])
async def test_unsupported_content_type(h: NodeHarness, ctype):
    raw = json.dumps(req("mps_chainId")).encode()
    status, resp = await h.post(None, raw=raw, content_type=ctype)
    assert status == 415
    assert resp["id"] is None
    assert resp["error"]["code"] == Code.UNSUPPORTED_MEDIA_TYPE == 1302
    assert ctype in resp["error"]["message"]


async def test_json_with_charset_parameter(h: NodeHarness):
    raw = json.dumps(req("mps_chainId")).encode()
    status, resp = await h.post(None, raw=raw, content_type="application/json; charset=utf-8")
    assert status == 200 and resp["result"] == 4242


async def test_msgpack_raw_bytes_in_params_and_results(h: NodeHarness):
    kp = Keypair.generate()
    tx = record_tx(kp, 0, "m", b"\x00\xffbinary")
    status, resp = await h.post(req("mps_sendTransaction", [tx.encode()], rid=1), MSGPACK)
    assert status == 200
    assert resp["result"] == tx.hash  # raw bytes back, not hex
    # the answer uses the request's content type
    r = await h.client.post(
        "/",
        data=msgpack.packb(req("mps_chainId"), use_bin_type=True),
        headers={"Content-Type": MSGPACK},
    )
    assert r.content_type == MSGPACK
    await h.seal()
    blk = await h.result("mps_getBlockByNumber", "latest", True, media=MSGPACK)
    assert isinstance(blk["hash"], bytes) and len(blk["hash"]) == 32
    assert blk["transactions"][0]["raw"] == tx.encode()
    assert blk["transactions"][0]["payload"] == tx.payload
    # the same block over JSON carries the same bytes as 0x hex
    blk_json = await h.result("mps_getBlockByNumber", "latest", True)
    assert blk_json["hash"] == "0x" + blk["hash"].hex()
    # x-msgpack is accepted as an alias
    status, resp = await h.post(
        req("mps_getTransaction", [tx.hash]), MSGPACK, content_type="application/x-msgpack"
    )
    assert status == 200 and resp["result"]["hash"] == tx.hash
    # msgpack errors keep the envelope
    status, resp = await h.post(req("mps_getTransaction", [b"\x00" * 31], rid=3), MSGPACK)
    assert resp["id"] == 3 and resp["error"]["code"] == -32602


async def test_health(h: NodeHarness):
    r = await h.client.get("/health")
    assert r.status == 200
    base = {"status": "ok", "problems": [], "headAgeSeconds": None, "queued": 0}
    assert await r.json() == {**base, "head": 0, "mempool": 0}
    await h.send_ok(record_tx(Keypair.generate(), 0))
    r = await h.client.get("/health")
    assert await r.json() == {**base, "head": 0, "mempool": 1}
    await h.seal()
    r = await h.client.get("/health")
    view = await r.json()
    assert view["headAgeSeconds"] is not None and view["headAgeSeconds"] >= 0
    assert view == {**base, "head": 1, "mempool": 0, "headAgeSeconds": view["headAgeSeconds"]}


def metric(text: str, name: str, labels: str = "") -> float | None:
    pattern = re.escape(name) + (r"\{" + labels + r"\}" if labels else "") + r" (\S+)"
    m = re.search("^" + pattern + "$", text, re.M)
    return None if m is None else float(m.group(1))


async def test_metrics(h: NodeHarness):
    await h.send_ok(record_tx(Keypair.generate(), 0))
    await h.seal()
    for _ in range(3):
        await h.result("mps_chainId")
    await h.error("mps_nope")
    r = await h.client.get("/metrics")
    assert r.status == 200
    assert r.content_type == "text/plain"
    text = await r.text()
    assert metric(text, "mps_head_height", 'kind="unsafe"') == 1.0
    assert metric(text, "mps_head_height", 'kind="finalized"') == 0.0
    assert metric(text, "mps_rpc_seconds_count", 'method="mps_chainId"') == 3.0
    assert metric(text, "mps_rpc_seconds_count", 'method="mps_sendTransaction"') == 1.0
    assert metric(text, "mps_rpc_seconds_count", 'method="unknown"') == 1.0
    assert metric(text, "mps_rpc_errors_total", 'code="-32601"') == 1.0
    assert metric(text, "mps_block_txs_total") == 1.0
    assert metric(text, "mps_mempool_txs") == 0.0


async def test_metrics_count_rejected_transactions(h: NodeHarness):
    kp = Keypair.generate()
    await h.send_ok(record_tx(kp, 0))
    err = (await h.send(record_tx(kp, 0, value=b"other")))["error"]
    assert err["code"] == Code.NONCE_ALREADY_PENDING
    text = await (await h.client.get("/metrics")).text()
    assert metric(text, "mps_tx_rejected_total", 'reason="NONCE_ALREADY_PENDING"') == 1.0
    await h.send(b"\x01\x02")
    text = await (await h.client.get("/metrics")).text()
    assert metric(text, "mps_tx_rejected_total", 'reason="MALFORMED_TX"') == 1.0
    assert metric(text, "mps_tx_rejected_total", 'reason="NONCE_ALREADY_PENDING"') == 1.0


async def test_height_beyond_uint64_is_a_client_error(h: NodeHarness):
    err = await h.error("mps_getBlockByNumber", 2**64)
    assert err["code"] in (-32602, Code.NOT_FOUND)
