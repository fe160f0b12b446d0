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
from test_fl_rpc import CREATE_TASK, JOIN_TASK, REPORT_EVALUATION, SUBMIT_UPDATE, D, fl_tx, params
from test_fl_settlement import Run

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
    fl.empty(6)
    fl.block(fl.report(fl.requester, tid, 0, 800_000))
    return fl


PINNED_CHAINS: dict[str, tuple[str, str]] = {
    "scenario": (
        "0b5eaa9fab9fc29af3522227fc95c24bad5db5c34e98c42affb9ff666c5444be",
        "462e733adf5523a2b20684dd27dca0c6b736f6ca95da5675c854a25fc97d3160",
    ),
    "settlement_run": (
        "75dca7c35d4bd053a92f14d8c3e6a59ff997b12ff291ca0fae4ea232062ffca5",
        "f5a7698488fde060a7ec893c6b30c3cea5a7d4da65ba3a4277e2e5188594941c",
    ),
    "chunky_median": (
        "c84c919db2d8814208f92504e656154651ec60a024d7f2afc77f4b8d3eb37a22",
        "ea7e35f4400cca2b855e91f0200e8e1636ec4f3ab2f4f806aa13578945d82f88",
    ),
    "chunky_int16_trimmed": (
        "8bf2d7de19751bf1cde80898d19b3981e2c4a4bab1b239fd0e980625433a8476",
        "f846597de4aefb0b33710e14c35d7150adf25e4fe5d06023d3884724de1702a4",
    ),
    "deposits": (
        "0efcfc90f12b4f33f1b2d7c82a7a25033386c4bb255dd76912eb5e179be2dbb3",
        "7e281be17a41716811c4066468decfdfa62d417ed55cc9652543880eb2511f91",
    ),
}

PINNED_ROOTS: dict[str, str] = {
    "chunky_int16_trimmed": "ba9709de66ea6009e53215b538d6aa0a19f6feecbde8d42cfd9424f91d97e3a4",
    "chunky_median": "dc22a922b1e8d275a337f709e19329141bbaad13cc781ab40fe51a8397ada6cf",
    "deposits": "d0b14a8b82675b5777f7d19358b154f75acebe067f413f26f93fb2d7fec49f0d",
    "scenario": "d24f004ca86724da78c4eae578d91a3ce7db784d77dc4cc546a4b29dd0b29263",
    "settlement_run": "6b5ae2a9b7d1e0b409a811792138191af5ff893b07a129335f60513a32e3b130",
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
PINNED_RPC_DIGEST = "a6cff745aae026491920a6021a34962a300d225c88d8bedaef6a64ad17ebcb45"


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
        await block(
            [
                fl_tx(kp, SUBMIT_UPDATE, 1, [tid, 0, u.tobytes()])
                for kp, u in zip(clients, ups, strict=True)
            ]
        )
        await block([fl_tx(evaluator, REPORT_EVALUATION, 0, [tid, 0, 850_000])])
        # epoch 1: the zero sender is slashable and not awaited; one client sends junk
        await block(
            [
                fl_tx(kp, SUBMIT_UPDATE, 2, [tid, 1, u.tobytes()])
                for kp, u in zip(clients[:5], [*ups[1:5], ups[0]], strict=True)
            ]
            + [fl_tx(clients[5], SUBMIT_UPDATE, 2, [tid, 1, b"\x00" * 3])]
        )
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
