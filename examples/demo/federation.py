"""The federation on the chain: the requester creates and funds the task, then epoch by epoch
the clients send their updates, the epoch closes, and the requester reports its accuracy.

The rules (``EpochRules(f=1)``, ``min_clients`` 5): Krum needs ``min_clients > 2f + 2``, and an
epoch closes only with ``min_clients`` updates, so ``min_clients`` must stay within the six
honest clients (once the cheaters are barred or slashed they are all that is left): f = 1.
"""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from client_sdk import fl
from client_sdk.answers import as_bytes
from client_sdk.client import MPSClient
from client_sdk.keys import Keypair
from client_sdk.l1 import L1Config
from stf.fl.reference import REFERENCE_SCALE, trust
from stf.fl.rules import EpochRules
from stf.fl.task import TaskParams
from stf.ids import BlobId, ClientKey

from .attacks import SECOND_WAVE, craft
from .baselines import Baselines
from .chain import (
    chain_commitments,
    chain_reveals,
    copy_commitment,
    steal_reveal,
    submit_wave,
    wait_commitments,
    wait_epoch,
)
from .data import F64, HIDDEN, Data, Trainer, script_source
from .members import Member
from .report import log, print_epoch

F = 1
MIN_CLIENTS = 5
# blocks of an epoch's window. Epoch 0 must hold the joins, the L1 funding deposit and both
# waves; on an idle machine they take 3 blocks after the task's, but under load a wave can
# straddle a block boundary (blocks come every second while transactions wait), and a second
# wave that misses the window lets the copying free rider off for that epoch. Later epochs
# also hold the accuracy report and the slashes coming back from the L1. 8 leaves that margin;
# it costs nothing while every client that can still submit does (the epoch closes at once).
WINDOW_BLOCKS = 8
# ten epochs' fee (FEE_PER_EPOCH 0.1 ETH on a dev network) and 0.01 ETH for the task's data,
# which the L1 bills first (25e12 wei per MiB on a dev network: 400 MiB, far above this demo's)
DEPOSIT_WEI = 10**18 + 10**16
ETH = 10**18


@dataclass
class Options:
    """One run, as the command line resolved it."""

    devnet: Path
    rpc: str
    epochs: int
    out: Path
    seed: int


class Federation:
    """One demo run: the requester, the members, the task, and the local comparison runs."""

    def __init__(self, opts: Options, members: list[Member], data: Data) -> None:
        self.opts = opts
        self.members = members
        self.data = data
        self.trainer = Trainer(data, opts.seed)
        self.w0 = self.trainer.init_weights()
        self.baselines = Baselines(self.trainer, data, self.w0)
        self.requester = MPSClient(
            opts.rpc, Keypair.generate(), L1Config.from_devnet(opts.devnet, "admin")
        )
        self.ex = ThreadPoolExecutor(len(members) + 2)  # + the reference and the report
        self.task_id = b""
        self.params: TaskParams | None = None
        self.epochs: list[int] = []
        self.acc_chain: list[float] = []
        self.reports: list[Future[bytes]] = []
        self.ref_delta: F64 = np.zeros(0)
        self.referenced: list[bool] = []  # per epoch: the close weighed the step by it

    @property
    def p(self) -> TaskParams:
        assert self.params is not None
        return self.params

    def create_task(self) -> None:
        """The requester creates and funds the task; the clients join."""
        draft = TaskParams(
            name=f"demo-digits-{int(time.time())}",
            layout=self.trainer.layout,
            dtype="int8",
            shift=0,
            init_model=BlobId(bytes(32)),  # create_task fills in the uploaded blobs' ids
            script=BlobId(bytes(32)),
            epochs=self.opts.epochs,
            target_accuracy_ppm=1_000_000,  # no early stop: run every epoch
            min_clients=MIN_CLIENTS,
            max_clients=len(self.members),
            window_blocks=WINDOW_BLOCKS,
            evaluator=ClientKey(bytes(32)),
            rules=EpochRules(f=F),
        )
        shift, p999 = self.trainer.calibrate_shift(draft, self.w0)
        draft = dataclasses.replace(draft, shift=shift)
        script = script_source()
        req = self.requester
        self.task_id = req.create_task(draft, self.w0, script, DEPOSIT_WEI)
        self.params = req.task_params(self.task_id)
        log(
            f"  task {self.task_id.hex()}\n"
            f"  requester {req.require_key().public_key.hex()[:12]} (ed25519, fresh), L1 account"
            f" {req.l1.address} (the dev admin); funded with {DEPOSIT_WEI / ETH:g} ETH\n"
            f"  model: MLP 64-{HIDDEN}-10, d = {self.p.d}, int8 updates at shift {shift}"
            f" (p99.9 |delta| {p999:.3f}); script blob {fl.script_cid(script)}"
            " (examples/demo/data.py)\n"
            f"  {self.opts.epochs} epochs, window {WINDOW_BLOCKS} blocks; rules f = {F},"
            f" min_clients {MIN_CLIENTS} (> 2f + 2, and within the honest clients),"
            f" krum_ratio 3, strikes_to_bar 2"
        )
        list(self.ex.map(lambda m: m.mps.join(self.task_id), self.members))
        log(f"  {len(self.members)} clients joined")

    def run_epoch(self, e: int) -> bool:
        """One epoch on the chain; False when the task is no longer open."""
        t0 = time.monotonic()
        req, p = self.requester, self.p
        task = req.task(self.task_id)
        if task["status"] != "open":
            log(f"  the task is {task['status']}; stopping")
            return False
        base = req.base_model(self.task_id, e)
        prev = task["previousStep"]
        prev_step = None if prev is None else np.frombuffer(req.blob(as_bytes(prev)), np.int8)
        active = [m for m in self.members if not m.out and not m.lost]
        first = [m for m in active if m.role not in SECOND_WAVE]
        second = [m for m in active if m.role in SECOND_WAVE]
        parts = self.data.parts
        wave = [
            (m, craft(m.role, self.trainer, p, base, parts[m.index], e, m.index, (), prev_step))
            for m in first
        ]
        reference = self.send_reference(e, base)
        self.record_trust(wave, reference)
        futures = submit_wave(self.ex, self.task_id, e, wave)
        note = self.copy_attack(e, second, len(first), int(task["epochStart"]), futures)
        for f in futures:
            f.result()
        reference.result()
        summary = wait_epoch(req, self.task_id, e, timeout=120.0)
        self.referenced.append(summary["reference"] is not None)

        # the requester evaluates the new model on its held-out data and reports it; the report
        # goes in while the clients train the next epoch
        w_next = fl.read_model(req.blob, as_bytes(summary["nextBaseModel"]), p)
        acc = self.trainer.accuracy(w_next, p)
        self.reports.append(self.ex.submit(req.report_evaluation, self.task_id, e, acc))
        self.epochs.append(e)
        self.acc_chain.append(acc)
        self.record(summary, e)
        fa, ho = self.baselines.step(e, self.members, p)
        print_epoch(e, summary, time.monotonic() - t0, (acc, fa, ho), self.members, note)
        return True

    def send_reference(self, e: int, base: F64) -> Future[bytes]:
        """The requester's reference for epoch ``e``: its own training of the base on its root
        set, committed (included) before the clients start, so their commitments cannot end
        the commit phase before it; the reveal follows in the background."""
        req = self.requester
        self.ref_delta = self.trainer.reference_delta(base, e, self.p)
        req.commit_reference(self.task_id, e, self.ref_delta)
        return self.ex.submit(req.submit_reference, self.task_id, e, self.ref_delta, 120.0)

    def record_trust(self, wave: list[tuple[Member, F64]], reference: Future[bytes]) -> None:
        """Each update's trust, ``floor(2^20 max(0, cos(u, r)))`` on the quantized arrays, as
        the chain computes it (stf.fl.reference), as a fraction."""
        shift, dtype = self.p.shift, self.p.dtype
        r = fl.quantize(self.ref_delta, shift, dtype).astype(np.int64)
        rsq = int(r @ r)
        for m in self.members:
            m.trust.append(None)
        for m, delta in wave:
            u = fl.quantize(delta, shift, dtype).astype(np.int64)
            m.trust[-1] = trust(int(u @ u), int(u @ r), rsq) / REFERENCE_SCALE

    def copy_attack(
        self, e: int, copiers: list[Member], n_first: int, since: int, first: list[Future[None]]
    ) -> str:
        """The copying free rider against commit-reveal: it copies the median commitment of the
        first wave (all it can see), then, once its victim has revealed, tries to open the copy
        with the victim's update and salt as the chain shows them. What happened, in words."""
        if not copiers:
            return ""
        req, tid = self.requester, self.task_id
        wait_commitments(req, tid, n_first, timeout=60.0)
        theirs = {m.key for m in copiers}
        seen = [(s, d) for s, d in chain_commitments(req, tid, e, since) if s not in theirs]
        if not seen:
            return ""
        victim, digest = seen[len(seen) // 2]
        for m in copiers:
            copy_commitment(m, tid, e, digest)
        for f in first:  # the first wave has revealed once its futures are done
            f.result()
        update, salt = chain_reveals(req, tid, e, since).get(victim, (None, b""))
        if update is None:
            return ""
        names = {m.key: m.name for m in self.members}
        what = []
        for m in copiers:
            rc = steal_reveal(m, tid, e, update, salt)
            outcome = "accepted" if int(rc["status"]) == 1 else f"refused ({rc['message']})"
            what.append(
                f"{m.name} copied {names.get(victim, '?')}'s commitment, then revealed"
                f" {names.get(victim, '?')}'s update and salt: {outcome}"
            )
        return "; ".join(what)

    def record(self, summary: dict[str, Any], epoch: int) -> None:
        """Scores and flags from the epoch's summary; the verdict of every flagged client
        (``slashing_state``, its proofs checked against the node's root)."""
        by_key = {as_bytes(r["client"]): r for r in summary["records"]}
        flagged: list[Member] = []
        for m in self.members:
            r = by_key.get(m.key)
            m.scores.append(None if r is None else int(r["score"]))
            m.flags.append(0 if r is None else int(r["flags"]))
            if r is not None and int(r["flags"]):
                flagged.append(m)

        def refresh(m: Member) -> None:
            st = m.mps.slashing_state(self.task_id, trust="node")
            m.strikes = st.strikes
            if not m.out and (st.slashable or st.barred):
                m.slashable, m.barred = st.slashable, st.barred
                m.reason_names = list(st.reason_names)
                m.slash_epoch, m.barred_epoch = st.slash_epoch, st.barred_epoch

        list(self.ex.map(refresh, flagged))
