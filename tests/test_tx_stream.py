"""``POST /txs``: transactions streamed as frames get the same admission as one by one."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rpc_fixtures import MSGPACK, NodeHarness, record_tx, start_node, unhex

from client_sdk.keys import Keypair
from client_sdk.tx import put_blob
from mps_common.tx_stream import FRAME_PREFIX, TX_STREAM, frame
from node.journal import TxJournal
from stf.errors import Code


async def stream(
    h: NodeHarness, body: bytes | Any, accept: str = "application/json"
) -> tuple[int, list[dict[str, Any]]]:
    resp = await h.client.post(
        "/txs", data=body, headers={"Content-Type": TX_STREAM, "Accept": accept}
    )
    raw = await resp.read()
    answers = msgpack.unpackb(raw, raw=False) if resp.content_type == MSGPACK else json.loads(raw)
    return resp.status, answers


def codes(answers: list[dict[str, Any]]) -> list[int | None]:
    assert [a["id"] for a in answers] == list(range(len(answers)))
    return [a["error"]["code"] if "error" in a else None for a in answers]


@pytest.fixture
async def h(tmp_path):
    async with start_node(tmp_path / "n", verify_threads=2) as harness:
        yield harness


async def test_a_stream_admits_every_frame_in_order_and_journals_each(h: NodeHarness) -> None:
    kp = Keypair.generate()
    others = [Keypair.generate() for _ in range(3)]
    # one sender's consecutive nonces (order matters), big ones checked on the pool, and others
    txs = [record_tx(kp, n, value=os.urandom(2000)) for n in range(12)]
    txs += [put_blob(k, 4242, 0, os.urandom(100_000)) for k in others]
    status, answers = await stream(h, frame(tx.encode() for tx in txs))
    assert status == 200
    assert codes(answers) == [None] * len(txs)
    assert [unhex(a["result"]) for a in answers] == [tx.hash for tx in txs]
    assert all(tx.hash in h.mempool for tx in txs)
    journal = TxJournal(h.cfg.datadir / "mempool.journal")
    assert journal.read_all() == [tx.encode() for tx in txs]  # acknowledged means journaled
    journal.close()
    sealed = await h.seal()
    assert [tx.hash for tx in sealed.block.txs] == [tx.hash for tx in txs]


async def test_msgpack_answers_carry_raw_hashes(h: NodeHarness) -> None:
    tx = record_tx(Keypair.generate(), 0)
    status, answers = await stream(h, frame([tx.encode()]), accept=MSGPACK)
    assert status == 200 and answers == [{"jsonrpc": "2.0", "id": 0, "result": tx.hash}]


async def test_the_stream_stops_at_its_first_refusal_and_keeps_what_went_before(
    h: NodeHarness,
) -> None:
    kp = Keypair.generate()
    good = [record_tx(kp, n) for n in range(3)]
    bad = record_tx(kp, 1, value=b"other")  # nonce 1 is already pending by then
    after = [record_tx(kp, 3), record_tx(Keypair.generate(), 0)]
    status, answers = await stream(h, frame(tx.encode() for tx in [*good, bad, *after]))
    assert status == 200
    assert codes(answers) == [
        None,
        None,
        None,
        int(Code.NONCE_ALREADY_PENDING),
        int(Code.STREAM_STOPPED),
        int(Code.STREAM_STOPPED),
    ]
    assert "frame 3" in answers[4]["error"]["message"]
    assert answers[3]["error"]["data"] == {"name": "NONCE_ALREADY_PENDING"}
    assert all(tx.hash in h.mempool for tx in good)
    assert not any(tx.hash in h.mempool for tx in after)  # no gap the sender did not choose


async def test_a_bad_signature_mid_stream_is_its_frames_error(h: NodeHarness) -> None:
    kp = Keypair.generate()
    first = put_blob(kp, 4242, 0, os.urandom(20_000))  # checked off the loop
    forged = bytearray(put_blob(kp, 4242, 1, os.urandom(20_000)).encode())
    forged[-1] ^= 1
    status, answers = await stream(h, frame([first.encode(), bytes(forged)]))
    assert status == 200 and codes(answers)[0] is None
    assert codes(answers)[1] in (int(Code.INVALID_SIGNATURE), int(Code.MALFORMED_TX))


@pytest.mark.parametrize(
    ("tail", "code", "words"),
    [
        (b"\x00\x00", Code.STREAM_MALFORMED, "inside a length prefix"),
        (FRAME_PREFIX.pack(500) + b"x" * 10, Code.STREAM_MALFORMED, "after 10 of its 500"),
        (FRAME_PREFIX.pack(0), Code.STREAM_MALFORMED, "1 to"),
        (FRAME_PREFIX.pack(2**32 - 1), Code.STREAM_MALFORMED, "4294967295 bytes"),
    ],
)
async def test_a_malformed_tail_is_answered_after_what_was_admitted(
    h: NodeHarness, tail: bytes, code: Code, words: str
) -> None:
    tx = record_tx(Keypair.generate(), 0)
    status, answers = await stream(h, frame([tx.encode()]) + tail)
    assert status == 200
    assert codes(answers) == [None, int(code)]
    assert words in answers[1]["error"]["message"]
    assert tx.hash in h.mempool


async def test_an_empty_stream_is_an_empty_answer(h: NodeHarness) -> None:
    assert await stream(h, b"") == (200, [])


async def test_another_content_type_is_415(h: NodeHarness) -> None:
    resp = await h.client.post("/txs", data=b"{}", headers={"Content-Type": "application/json"})
    assert resp.status == 415
    (answer,) = json.loads(await resp.read())
    assert answer["error"]["code"] == int(Code.UNSUPPORTED_MEDIA_TYPE)
    assert TX_STREAM in answer["error"]["message"]


async def test_a_stream_over_max_stream_txs_is_refused_past_the_limit(tmp_path) -> None:
    async with start_node(tmp_path / "n", max_stream_txs=3) as h:
        txs = [record_tx(Keypair.generate(), 0) for _ in range(5)]
        status, answers = await stream(h, frame(tx.encode() for tx in txs))
        assert status == 200
        assert codes(answers) == [None, None, None, int(Code.BATCH_TOO_LARGE)]
        assert sum(tx.hash in h.mempool for tx in txs) == 3
        exactly = [record_tx(Keypair.generate(), 0) for _ in range(3)]
        assert codes((await stream(h, frame(tx.encode() for tx in exactly)))[1]) == [None] * 3


async def test_a_frame_that_never_arrives_times_out(tmp_path) -> None:
    async with start_node(tmp_path / "n", body_timeout=0.3) as h:
        tx = record_tx(Keypair.generate(), 0)

        async def trickle():  # one frame, then half of a second one, then nothing
            yield frame([tx.encode()])
            yield FRAME_PREFIX.pack(100) + b"x" * 50
            await asyncio.sleep(2.0)

        status, answers = await stream(h, trickle())
        assert status == 200
        assert codes(answers) == [None, int(Code.BODY_TIMEOUT)]
        assert tx.hash in h.mempool


async def test_any_body_gets_an_answer_per_frame_and_never_a_500(h: NodeHarness) -> None:
    # hypothesis draws the bodies (it cannot drive a coroutine), the loop then sends them
    drawn: list[bytes] = []
    real = frame([record_tx(Keypair.generate(), 0).encode()])

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.binary(max_size=400), st.booleans())
    def collect(body: bytes, lead: bool) -> None:
        drawn.append(real + body if lead else body)

    collect()
    for body in drawn:
        status, answers = await stream(h, body)
        assert status == 200
        assert -32603 not in codes(answers)  # a refusal or a hash per frame, never a crash


async def test_frames_cut_across_any_chunking_come_out_whole(h: NodeHarness) -> None:
    txs = [record_tx(Keypair.generate(), 0, value=os.urandom(n)) for n in (1, 700, 3000, 40)]
    body = frame(tx.encode() for tx in txs)

    async def pieces():  # 7 bytes at a time: every prefix and frame is split somewhere
        for at in range(0, len(body), 7):
            yield body[at : at + 7]
            await asyncio.sleep(0)

    status, answers = await stream(h, pieces())
    assert status == 200 and codes(answers) == [None] * len(txs)
    assert [unhex(a["result"]) for a in answers] == [tx.hash for tx in txs]


async def test_a_blob_payload_is_parsed_once_from_admission_to_its_block(
    h: NodeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each parse of a put_blob payload copies the blob: the stateless check, the pool's quota
    check and the block's execution share one parse of the same transaction object."""
    from stf.txtypes.blob import PutBlob

    parses: list[int] = []
    real = PutBlob.decode_payload.__func__  # type: ignore[attr-defined]

    def counting(cls, payload, limits):  # type: ignore[no-untyped-def]
        parses.append(len(payload))
        return real(cls, payload, limits)

    monkeypatch.setattr(PutBlob, "decode_payload", classmethod(counting))
    tx = put_blob(Keypair.generate(), 4242, 0, os.urandom(50_000))
    status, answers = await stream(h, frame([tx.encode()]))
    assert status == 200 and codes(answers) == [None]
    sealed = await h.seal()
    assert [t.hash for t in sealed.block.txs] == [tx.hash] and sealed.receipts[0].status == 1
    assert len(parses) == 1


async def test_a_stream_that_trickles_for_ever_is_cut(tmp_path) -> None:
    """Each frame in time, the whole never done: a frame per body_timeout held a socket for
    as long as max_stream_txs frames took (days); the whole body has ten body_timeouts."""
    async with start_node(tmp_path / "n", body_timeout=0.2) as h:
        txs = [record_tx(Keypair.generate(), 0) for _ in range(40)]

        async def trickle():
            for tx in txs:
                yield frame([tx.encode()])
                await asyncio.sleep(0.1)

        status, answers = await stream(h, trickle())
        assert status == 200
        got = codes(answers)
        assert got[-1] == int(Code.BODY_TIMEOUT) and set(got[:-1]) == {None}
        assert 10 <= len(got) - 1 < 30  # about 2 s of frames at one per 0.1 s
        assert "the stream did not arrive within 2s" in answers[-1]["error"]["message"]


async def test_a_check_job_refused_whole_is_answered_per_frame(h: NodeHarness, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Red team: an MPSError raised by the pool's job (the node shutting down) escaped the
    stream as an HTTP 500 with no answers, and left its journal write running unawaited."""
    from stf.errors import MPSError

    async def refuse(raws: list[bytes]) -> list[Any]:
        raise MPSError(Code.SHUTTING_DOWN, "the node is shutting down")

    monkeypatch.setattr(h.node.sequencer, "check_many", refuse)
    kp = Keypair.generate()
    status, answers = await stream(h, frame(record_tx(kp, n).encode() for n in range(3)))
    assert status == 200
    assert codes(answers) == [Code.SHUTTING_DOWN, Code.STREAM_STOPPED, Code.STREAM_STOPPED]
    assert len(h.mempool) == 0
