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
Re-pinned for commit-reveal (issue 10: every chain that trains). Re-pinned for the stake
release (issue 11): an unbond writes ``unbonding/`` or ``release/``, slash evidence writes
``convicted/``; the deposits chain (an unbond) and the settlement run (a slash) moved, the
others hold neither and did not. The deposits chain again for stake bindings (issue 11): a
stake carries the key's signature naming its L1 account, and one more deposit, a stake bound
to another account, fails. Every chain for task funding (issue 11): the chain spec in genesis
holds ``funding_window_blocks``, a task's parameters its ``funder``, the settle leaf names the
funder and a ``funding/<task><funder>`` leaf is binary; the ``funded`` chain was added.
Every chain's block hashes (not one state root) for the receipts root of issue 12's red team:
it commits to each receipt's hash, height, index, status and code, no longer to its message.
Every chain that trains for reward credits (issue 10): a client's epoch record carries its
``credit`` and the ``reward/`` leaf sums credits instead of counting unflagged updates.
The RPC answers alone for the requester's reference (issue 10): ``mps_getTask`` and
``mps_getEpoch`` gained ``reference`` (null in this run; with those five fields removed the
answers hash to the former digest); no block hash or state root moved.
The ``funded`` chain alone for the blob quotas of issue 13: on a chain that funds its tasks a
blob is uploaded for a task, so its requester now uploads after the funding, against it
(``upload/<task><funder>``); the other chains allow bare blobs and did not move. The
``funded`` chain again for issue 13's red team: a pre-task upload carries its create_task's
body (only the requester may spend the funding's quota): its block hashes moved, its state
roots did not (the quota counter holds the same bytes).
Every chain whose task settles, for the data fee of issue 13: the settle leaf gained
``data_bytes`` (41 bytes; 0 on these chains, which do not price bytes); with the leaf cut back to
its former 33 bytes every chain and root hashes as before (checked). The RPC answers for that and
``mps_getGenesis``'s new ``dataFeePerMib`` (with it removed and the old leaf, the former digest),
and again for ``mps_getTask``'s ``dataBudget`` (null here; removed, the digest before it).
The ``funded`` chain for issue 13's second red team: on a chain that funds its tasks a reveal
is charged to its sender's upload quota before it runs (its failure is paid for): its reveals
write their senders' ``upload/`` counters (without that charge it hashes as before, checked).
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
from test_fl import CHAIN_ID as FL_CHAIN_ID
from test_fl import FL, Honest, init_model, pub, scenario, task_params
from test_fl import SCRIPT as FL_SCRIPT
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

from conftest import signing_key, stake_args  # isort: skip


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
    newcomer = signing_key(77)
    other = stake_args(signing_key(79), b"\x02" * 20, 1000, FL_CHAIN_ID)
    elsewhere = stake_args(signing_key(79), b"\x03" * 20, 1000, FL_CHAIN_ID)
    tid = fl.new_task(min_clients=5, max_clients=6)
    fl.join_all(tid, fl.clients[:5])
    fl.block(
        fl.stake(newcomer, b"\x09" * 20, 10**18),
        fl.stake(fl.clients[0], b"\x01" * 20, 1000),  # already bound: fails
        fl.deposit("stake", [*other[:3], elsewhere[3]]),  # bound to another account: fails
        fl.deposit("unbond", [pub(fl.clients[5])]),
        fl.deposit("unbond", [pub(signing_key(78))]),  # never counted: released at once
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


def funded_chain() -> FL:
    """A chain whose tasks are funded on the L1 first: a front-run funding, the bound one, an
    unfunded create_task refused, the settlement naming the funder, the front-run lapsing."""
    fl = FL(n_clients=5, funding_window=6)
    alice, mallory = b"\xaa" * 20, b"\xee" * 20
    model = init_model().tobytes()
    uploads = fl.skip(fl.requester, 2)  # the blobs go out after the funding, before the create
    create = fl.create(
        task_params(
            sha(model), sha(FL_SCRIPT), min_clients=5, max_clients=5, epochs=1, funder=alice
        )
    )
    fl.block(
        fl.deposit("fund", [create.hash, mallory, 1]),
        fl.deposit("fund", [create.hash, alice, 7 * 10**17]),
    )
    fl.block(
        fl.put_blob(fl.requester, model, create.hash, alice, uploads, create),
        fl.put_blob(fl.requester, FL_SCRIPT, create.hash, alice, uploads + 1, create),
    )
    unfunded = fl.create(task_params(sha(model), sha(FL_SCRIPT)), key=fl.outsider)
    result = fl.block(create, unfunded)
    assert [(r.status, r.code) for r in result.receipts] == [(1, 0), (0, 1124)]
    fl.join_all(create.hash, fl.clients)
    h = Honest(seed=9)
    fl.submit_all(create.hash, 0, [(k, h.one()) for k in fl.clients])
    fl.empty(6)
    return fl


PINNED_CHAINS: dict[str, tuple[str, str]] = {
    "chunky_int16_trimmed": (
        "36a4e1c594ca75ecfb62a039b4f742fd68d73387407c6b08fc93185ef6c27071",
        "a7a6af8f156c3e4bf7793ee54ea2c6783d4d357cd685ea09d7edb53412f0c9c6",
    ),
    "chunky_median": (
        "b8ff82d5d604033f33f54e9a205992073d0b018a72c4a7624be771983375f891",
        "bf36d896854ba213df5bb7b976c5829b4aae97887caad065e429c2c627c60be3",
    ),
    "deposits": (
        "f4e75e590d3bead315488904637d95b1cea1060c8f3ae974961cdbb4c1ebacfe",
        "ed883503d8ee68963f3849eee31d367736e935691a78a00cd417d953cf4c1290",
    ),
    "funded": (
        "3378b964d27e37bebd1bbe66c2f9f28f72fdbfc653cef04de674203e808defb1",
        "738ff0a561cd4abee4ee75aa16487a4e6654032f6708f74b4878cf4672a33363",
    ),
    "scenario": (
        "030b644ce5f9cfbf6e6989479d04c0df127d26d772019dfb08a240f4e427b132",
        "5a40fe1f10799589903481a752e0eec8040d52da8fb8c6431aa5a3ec3112d5c1",
    ),
    "settlement_run": (
        "3212cbf1de3c083570957cf78b8445810b5d608518247cb2c781c2a561d6c410",
        "2478f1c5927decf8cff3c998bf922cd30c24b87a362841a2577ea2062769c175",
    ),
}

PINNED_ROOTS: dict[str, str] = {
    "chunky_int16_trimmed": "800b2e8cd2edeea3d6b5fd2f9c0a485ac2e11f547f6bb855fcd9bd1207b68e1f",
    "chunky_median": "3cb4845faa736ca25fd3017efe719588933c35aad091704fe31faffe02e163e7",
    "deposits": "ed3f65076faf5c364598041a91e2c2f6f3d0909277d5f1c6e02b755ad0f5132b",
    "funded": "b6d60451f063dc878db9148eff495a22e9a5c6dc6380daf027eb038678d86cdb",
    "scenario": "7b1ddd9777845d5a3cef8806293a6d52df3d01532fd71f7cfc5a34f9c70a49d4",
    "settlement_run": "7730566909abdecbbb4da975112caf81325085121e1a2929b040df4ead79411f",
}

BUILDERS = {
    "scenario": lambda: scenario(d=1000),
    "settlement_run": lambda: Run().fl,
    "chunky_median": lambda: chunky_run(None, "median")[0],
    "chunky_int16_trimmed": lambda: chunky_run(None, "trimmed_mean", "int16")[0],
    "deposits": deposits_chain,
    "funded": funded_chain,
}


@pytest.mark.parametrize("name", sorted(PINNED_CHAINS))
def test_fixture_chains_keep_their_pinned_hashes_and_roots(name: str) -> None:
    fl = BUILDERS[name]()
    assert roots_digest(fl) == PINNED_ROOTS[name]
    assert chain_digest(fl) == PINNED_CHAINS[name]
    assert fl.replay_from_genesis().data == fl.chain.store.data


# -- the FL RPC answers, on a node whose clock is pinned -------------------------------

SCRIPT = b"print('golden')\n"
PINNED_RPC_DIGEST = "feae655e4649632c2945dd5d7aee7f84cc811e949048d7a1e326d7f3d0b2a0df"


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
