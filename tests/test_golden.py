"""Pinned bytes: the fixture chains' block hashes and state roots, and the FL RPC answers.

The digests below were taken from the code before the structural refactor of the state records,
the L1 services and the SDK (issue 9), which was to change no byte. A refactor that changes one
of them has changed consensus (or the RPC wire format): it must be deliberate, and documented in
docs/protocol.md, never a side effect. Each digest is the sha256 of every block's hash and state
root in order, so it pins every intermediate root, not only the last.

History: first pinned before the structural refactor (issue 9), which changed none of them.
Re-pinned once, deliberately, for the verdict policy of issue 10's first slice (statistical and
exact-but-unprovable flags bar instead of slashing; verdicts gained ``barred``; rewards count
unflagged updates) and receipt codes v2 (docs/rpc.md). The deposits chain has no verdicts: its
state roots did not move, only its block hashes (its failed deposits' receipt codes).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rpc_fixtures import CHAIN_ID, hx, start_node
from test_fl import FL, Honest, pub, scenario
from test_fl_chunked import chunky_run
from test_fl_rpc import CREATE_TASK, JOIN_TASK, REPORT_EVALUATION, D, fl_tx, params, sha
from test_fl_settlement import Run

from client_sdk import fl as sdk
from client_sdk.keys import Keypair
from client_sdk.tx import put_blob, put_record
from stf.fl.task import TaskParams
from stf.genesis import GenesisStake
from stf.ids import BlobId
from stf.tx import Transaction

from conftest import signing_key  # isort: skip


def chain_digest(fl: FL) -> tuple[str, str]:
    """(sha256 over every block's hash and state root, the head's state root), as hex."""
    h = hashlib.sha256()
    for b in fl.chain.blocks:
        h.update(b.hash + b.header.state_root)
    return h.hexdigest(), fl.root.hex()


def roots_digest(fl: FL) -> str:
    """sha256 over every block's state root alone: what the state says, whatever the receipts
    (a block's hash also covers its receipts' codes and messages)."""
    return hashlib.sha256(b"".join(b.header.state_root for b in fl.chain.blocks)).hexdigest()


def deposits_chain() -> FL:
    """Every L1 deposit kind, accepted and refused, beside records, blobs and a task."""
    fl = FL(n_clients=6)
    newcomer = pub(signing_key(77))
    tid = fl.new_task(min_clients=5, max_clients=6)
    fl.join_all(tid, fl.clients[:5])
    fl.block(
        fl.deposit("stake", [newcomer, b"\x09" * 20, 10**18]),
        fl.deposit("stake", [pub(fl.clients[0]), b"\x01" * 20, 1000]),  # already bound: fails
        fl.deposit("unbond", [pub(fl.clients[5])]),
        fl.deposit("unbond", [pub(signing_key(78))]),  # never staked: fails
        fl.deposit("fund", [tid, b"\x07" * 20, 5 * 10**17]),
        fl.tx(fl.outsider, 1, ["note", b"hello"]),
    )
    fl.block(
        fl.deposit("withdraw", [pub(fl.clients[5])]),
        fl.deposit("withdraw", [pub(fl.clients[1])]),  # staked, not unbonding: fails
        fl.deposit("slash", [pub(fl.clients[4])]),
        fl.deposit("fund", [tid, b"\x07" * 20, 1]),  # funded twice: fails
        fl.deposit("fund", [b"\x55" * 32, b"\x08" * 20, 3]),  # before its task exists
        fl.put_blob(fl.outsider, b"some bytes"),
    )
    h = Honest(seed=5)
    fl.submit_all(tid, 0, [(k, h.one()) for k in fl.clients[:4]])  # client 4 was slashed on L1
    fl.empty(6)  # four commitments, min_clients 5: the epoch stays open
    fl.block(fl.report(fl.requester, tid, 0, 800_000))
    return fl


PINNED_CHAINS: dict[str, tuple[str, str]] = {
    "scenario": (
        "70e7e5ad625d82018f918d66231edb4443b271f7c28a32873829e19f17f9310a",
        "fdd700e41b491a1cbe910cd0329c36737830d74ac6de976f1104a3f5e5439fe2",
    ),
    "settlement_run": (
        "61a8132a27124ecd110444fdc49756636d7514f27993f05dbf86c15fbe2a56d8",
        "cdbdca473b0afd87715e7c729a430492a49d7717f05e1e2cd19562cce9acb45e",
    ),
    "chunky_median": (
        "28d0dcca169309ecdbb5a6205576a9706ca2c168d8d72dbb3dd66a0685a9fb0d",
        "b6672e7339244367e2aae2caf2ea31384ed5ac21f0afb5c7206c7797386bbe12",
    ),
    "chunky_int16_trimmed": (
        "66907c7d55d3e0b5f8b73f0725e9c20964be72a6dcc24bb4db121df320671c2a",
        "d008d461857323b904a3c9be02aa14589e5ca99b4da16056b524d8c2d53f3321",
    ),
    "deposits": (
        "ec70ced4fa36698316b68c8069a1a7efc2443e23eb240732bfeb0581d3826e83",
        "2bd0cec0d97c39bc9f938a5466d70cc958a89aae0c224294d9b319b584e767c2",
    ),
}

PINNED_ROOTS: dict[str, str] = {
    "chunky_int16_trimmed": "9a47d03a6b6f756da7d7f27889c8344af8a80d604c5914a887d777751cebb83c",
    "chunky_median": "a0dded353359488466d4d52e64fbde23b3ccc809f5ae6fa2d841e42580783b0d",
    "deposits": "a18e99b7b90ff46a1724b3c8d1669738a0b25f34c9fca3939c8f0a432adbcb67",
    "scenario": "affb80c5b5f76ed32727a94114c2b4edcfdb11bed3eaf2611ebc0d3f3c3d90e6",
    "settlement_run": "a614591f30b232a01c1f2fb8dbf7ab5681b9d92ec7ec9ca771936ccd45ce5b76",
}

BUILDERS = {
    "scenario": lambda: scenario(d=1000),
    "settlement_run": lambda: Run().fl,
    "chunky_median": lambda: chunky_run(None, "median")[0],
    "chunky_int16_trimmed": lambda: chunky_run(None, "trimmed_mean", "int16")[0],
    "deposits": deposits_chain,
}


@pytest.mark.parametrize("name", sorted(PINNED_CHAINS))
def test_fixture_chains_keep_their_pinned_hashes_and_roots(name: str) -> None:
    fl = BUILDERS[name]()
    assert roots_digest(fl) == PINNED_ROOTS[name]
    assert chain_digest(fl) == PINNED_CHAINS[name]
    assert fl.replay_from_genesis().data == fl.chain.store.data


# -- the FL RPC answers, on a node whose clock is pinned -------------------------------

SCRIPT = b"print('golden')\n"
PINNED_RPC_DIGEST = "3b341c4e3c864509dff2ec96603d6619f33be44ee8308f27f3bf935382a52681"


def golden_params(model: bytes, evaluator: bytes) -> TaskParams:
    """test_fl_rpc's task, named and scripted for this test, over two epochs."""
    script = BlobId(hashlib.sha256(SCRIPT).digest())
    return replace(params(model, evaluator), name="golden", script=script, epochs=2)


class PinnedClock:
    """``time`` for the sequencer: block timestamps 1 s apart from a fixed instant."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.perf_counter = time.perf_counter

    def time(self) -> float:
        self.now += 1.0
        return self.now


async def test_fl_rpc_answers_keep_their_pinned_bytes(tmp_path, monkeypatch) -> None:
    import node.sequencer

    clock = PinnedClock()
    monkeypatch.setattr(node.sequencer, "time", clock)
    requester = Keypair.from_seed(b"\x01" * 32)
    evaluator = Keypair.from_seed(b"\x02" * 32)
    clients = [Keypair.from_seed(bytes([10 + i]) * 32) for i in range(6)]
    stakes = tuple(
        GenesisStake(kp.public_key, bytes([i + 1]) * 20, 1000) for i, kp in enumerate(clients)
    )
    rng = np.random.default_rng(5)
    model = rng.integers(-500, 500, D).astype("<i4").tobytes()
    create = fl_tx(requester, CREATE_TASK, 3, golden_params(model, evaluator.public_key).to_list())
    tid = create.hash
    direction = rng.normal(0, 20, D)
    ups = [
        np.clip(np.rint(direction + rng.normal(0, 20, D)), -127, 127).astype(np.int8)
        for _ in range(5)
    ]
    ups.append(np.zeros(D, dtype=np.int8))
    answers: list[Any] = []
    (tmp_path / "n").mkdir()
    Keypair.from_seed(b"\x42" * 32).save(tmp_path / "n" / "node.key")
    async with start_node(tmp_path / "n", genesis_stakes=stakes, genesis_timestamp_ms=1) as h:

        async def block(txs: list[Transaction]) -> None:
            for tx in txs:
                await h.send_ok(tx)
            await h.seal()

        await block(
            [
                put_blob(requester, CHAIN_ID, 0, model),
                put_blob(requester, CHAIN_ID, 1, SCRIPT),
                put_record(requester, CHAIN_ID, 2, "hello", b"world"),
            ]
        )
        await block([create])
        await block([fl_tx(kp, JOIN_TASK, 0, [tid]) for kp in clients])
        answers.append(await h.result("mps_getTask", hx(tid)))

        def commits(epoch: int, nonce: int, pairs: list[tuple[Keypair, bytes]]) -> list[Any]:
            return [sdk.commit_update(kp, CHAIN_ID, nonce, tid, epoch, sha(u)) for kp, u in pairs]

        def reveals(epoch: int, nonce: int, pairs: list[tuple[Keypair, bytes]]) -> list[Any]:
            return [sdk.submit_update(kp, CHAIN_ID, nonce, tid, epoch, u) for kp, u in pairs]

        e0 = [(kp, u.tobytes()) for kp, u in zip(clients, ups, strict=True)]
        await block(commits(0, 1, e0))
        await block(reveals(0, 2, e0))
        await block([fl_tx(evaluator, REPORT_EVALUATION, 0, [tid, 0, 850_000])])
        # epoch 1: the zero sender (one strike) commits to junk, and its reveal is refused
        e1 = [(kp, u.tobytes()) for kp, u in zip(clients[:5], [*ups[1:5], ups[0]], strict=True)]
        junk = [(clients[5], b"\x00" * 3)]
        await block(commits(1, 3, e1 + junk))
        await block(reveals(1, 4, e1 + junk))
        for method, params in (
            ("mps_getTask", [hx(tid)]),
            ("mps_getTask", [hx(tid), 3]),
            ("mps_listTasks", [False, 10]),
            ("mps_getEpoch", [hx(tid), 0]),
            ("mps_getEpoch", [hx(tid), 1]),
            ("mps_getStake", [hx(clients[5].public_key)]),
            ("mps_getBlockByNumber", ["latest", True]),
            ("mps_getBlockByNumber", [4, False]),
            ("mps_getTransactionReceipt", [hx(create.hash)]),
            ("mps_syncStatus", []),
            ("mps_getGenesis", []),
        ):
            answers.append([method, params, await h.call(method, *params)])
        for kp in [*clients, requester]:
            answers.append(
                await h.result("mps_getSlashingState", hx(tid), hx(kp.public_key), "latest")
            )
    text = json.dumps(answers, sort_keys=True, separators=(",", ":"))
    assert hashlib.sha256(text.encode()).hexdigest() == PINNED_RPC_DIGEST, dump(tmp_path, text)


def dump(tmp_path: Path, text: str) -> str:
    """Keep the answers beside the failure, to diff against a run of the old code."""
    path = tmp_path / "answers.json"
    path.write_text(text)
    return f"the FL RPC answers changed; they are in {path}"
