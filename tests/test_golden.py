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
        "db540ac75da44e60f03b70f455ce46752938a55d67996c80b2cc38c5169bd0cb",
        "594e3062acd3da3f789ae3326eded052f1a39a1af2a1520aba64b5a9c4f29f5b",
    ),
    "settlement_run": (
        "364b0d71d83d1b9d75e390c5c6fc7154d35ccf840beeb3cb89ee4536d18a52b6",
        "8002019699baf123d098ea1255cf8fcbbb2b3c0332e0b80c8d35c98e3c394238",
    ),
    "chunky_median": (
        "0056b7dee96c8b463aee5c9a3609df93521142e9caadd70f3d93ee8344857052",
        "17e5c6e1cb8b76b37d5c522d2ad5c343b7d72767b4dd7fa4eb653a0c67240040",
    ),
    "chunky_int16_trimmed": (
        "22c6668db6df75ff21b38fc3b79a99c12b1ec26f11020d84454858b7063669cd",
        "a79455528ccafdc176e871a4fe72bcf4efc0fa8a7d0878073ffa9ac09b17ed24",
    ),
    "deposits": (
        "0b96aa63b356c5e2d5e7c3f79be4dc97957324b54b26cea60060d274e57da36c",
        "20b80fb7945c6d488a3bdea514cb0e9bb040f7f42f133371f09a5d9423f240fb",
    ),
}

PINNED_ROOTS: dict[str, str] = {
    "chunky_int16_trimmed": "209eebfc4473db73a9e1126589dcf6f0531fabd4ea82cdd81cfb509e484a1569",
    "chunky_median": "cb15757f452ffb91e79d323760684ce718bef6828ae5f2dc02bd4d8a49b1b053",
    "deposits": "c06af450b4b31cd0fb4bdebdb089d358df8dad53be2cc6dc50b564ca3c224a31",
    "scenario": "5d786d910c8a4a7b4048e7eecd8071a4710cab31191c2994c5c0c4d408f2fe44",
    "settlement_run": "afed6ad841efbd59c840f9a614eb0f751b84bf03de7eb8fdeadf73addd0886aa",
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
PINNED_RPC_DIGEST = "cccb6bd63bbcd65dbf16b96b78394b053845d316575a9d55ca85ac2051374cc7"


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
