"""The demo federation: twelve staked clients, six of them cheating, on a running dev network.

    python -m client_sdk.demo --devnet ./devnet [--rpc URL] [--epochs N] [--out DIR] [--quick]

It needs ``mps-node dev --datadir ./devnet`` running (``bash scripts/dev.sh`` starts one and
runs this) and talks to it only through the node's JSON-RPC and the dev L1, with the SDK:

* **data and model**: scikit-learn's bundled digits (8x8 images, no download), a stratified
  held-out quarter for the requester, the rest split over the clients non-IID (per class,
  Dirichlet(0.5) proportions); a 64-32-10 tanh MLP in torch (2,410 parameters, int8 updates).
* **clients**: the dev clients whose stake is ``staked`` on the L1 (a client slashed by an
  earlier run is replaced by a fresh key, staked from a fresh L1 account the admin funds; they
  are kept in ``<devnet>/demo-clients/``). Six are honest (``train_update``: 40 SGD steps of
  batch 16 from the epoch's base model); six cheat: ``signflip`` (-4 x its honest update),
  ``gauss`` (Gaussian noise, 10 x the honest RMS per coordinate), ``labelflip`` (trains on
  9 - y), and the free riders ``fr_zero`` (all zeros), ``fr_copy`` (reads another client's
  update of the epoch from the chain and sends it as its own) and ``fr_noise`` (noise scaled to
  the norm of the others' updates, read from the chain).
* **requester**: a fresh ed25519 key with the admin's L1 account; it creates the task (its
  script blob is this file), funds it on the L1, and reports the accuracy of every epoch's
  new model on its held-out data.
* **rules**: ``EpochRules(f=1)``, ``min_clients`` 5. Krum needs ``min_clients > 2f + 2``, and an
  epoch closes only with ``min_clients`` updates, so ``min_clients`` must stay within the six
  honest clients (once the cheaters are slashed they are all that is left): f = 1.
* **epochs**: a slashable client sends nothing more, so from the first slashing on an epoch
  closes when its window (5 blocks) has passed; the dev node seals blocks only for waiting
  transactions, so the requester writes a small record per block until then.
* **comparison**: the demo also runs, locally, plain FedAvg over every update (the same
  clients and attacks, nobody excluded) and FedAvg over the honest clients alone.

Each epoch it prints the accuracy, every client's Krum score, flags and verdict. After the last
one it waits for a batch holding the whole task to finalize on the L1, prints the verdicts
(every proof checked against that batch's root), shows the slashes the node's aggregator made
(``StakingRegistry.statusOf``) and the settlement, lets every client claim (the honest ones
are paid), and writes ``<out>/demo.png`` (accuracy per epoch; Krum scores per client,
attackers marked) and ``<out>/demo.json``. About 75 s for 10 epochs on two cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from stf import encoding
from stf.fl.rules import EpochRules, flag_names
from stf.fl.task import TaskParams, quantize
from stf.tx import Transaction

from . import fl
from .client import MPSClient, as_bytes
from .demo_plot import ClientSeries, DemoFigure, have_matplotlib, plot
from .errors import NotFound, RPCError, SDKError, WrongEpoch
from .keys import Keypair
from .l1 import L1, L1Config
from .train import layout_of, train_update, unflatten_into
from .tx import put_record

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

ROLES = ("honest",) * 6 + ("signflip", "gauss", "labelflip", "fr_zero", "fr_copy", "fr_noise")
ATTACKS = {
    "signflip": "sends -4 x its honest update",
    "gauss": "sends Gaussian noise, 10 x the honest RMS per coordinate",
    "labelflip": "trains on flipped labels (9 - y)",
    "fr_zero": "free rider: sends an all-zero update",
    "fr_copy": "free rider: copies another client's update of the epoch, read from the chain",
    "fr_noise": "free rider: sends noise scaled to the others' update norm (read from the chain)",
}
#: what bench/detection.py measures for each attack with these rules
EXPECTED = {
    "signflip": "KRUM_OUTLIER (or UNCORRELATED) strikes, slashable after 2",
    "gauss": "KRUM_OUTLIER strikes, slashable after 2",
    "labelflip": "KRUM_OUTLIER strikes; the slowest on non-IID data (3-8 epochs)",
    "fr_zero": "ZERO, certain: slashable at once",
    "fr_copy": "COPY, certain: slashable at once",
    "fr_noise": "UNCORRELATED strikes, slashable after 2",
}
#: free riders that need the others' updates of the epoch: they send once those are sealed
SECOND_WAVE = ("fr_copy", "fr_noise")

N_CLIENTS = len(ROLES)
HIDDEN = 32
LOCAL_STEPS = 40
BATCH = 16
LR = 0.3
ALPHA = 0.5  # Dirichlet concentration of the non-IID split
MIN_SAMPLES = 20
TEST_FRAC = 0.25
SIGNFLIP_K = 4.0
GAUSS_SCALE = 10.0
F = 1
MIN_CLIENTS = 5
# blocks of an epoch's window: room for the joins, the L1 funding deposit and both waves in
# epoch 0 (blocks come only with transactions, so a window is counted in those, not seconds)
WINDOW_BLOCKS = 5
DEPOSIT_WEI = 10**18
REPLACEMENT_FUNDS_WEI = 2 * 10**18
ETH = 10**18


# ------------------------------------------------------------------------------ data, model


@dataclass
class Data:
    x_train: npt.NDArray[np.float32]
    y_train: npt.NDArray[np.int64]
    x_test: npt.NDArray[np.float32]
    y_test: npt.NDArray[np.int64]
    parts: list[npt.NDArray[np.int64]]  # training indices per client


def load_data(n_clients: int, seed: int) -> Data:
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]
    from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]

    ds = load_digits()
    x = np.asarray(ds.data, dtype=np.float32) / 16.0
    y = np.asarray(ds.target, dtype=np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=TEST_FRAC, random_state=seed, stratify=y
    )
    rng = np.random.default_rng([seed, 12345])
    for _ in range(1000):  # per class, Dirichlet proportions over the clients
        parts: list[list[int]] = [[] for _ in range(n_clients)]
        for c in range(10):
            idx = rng.permutation(np.flatnonzero(y_tr == c))
            cuts = (np.cumsum(rng.dirichlet(np.full(n_clients, ALPHA)))[:-1] * len(idx)).astype(int)
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[k].extend(chunk.tolist())
        if min(len(p) for p in parts) >= MIN_SAMPLES:
            return Data(
                np.asarray(x_tr),
                np.asarray(y_tr),
                np.asarray(x_te),
                np.asarray(y_te),
                [np.array(sorted(p), dtype=np.int64) for p in parts],
            )
    raise RuntimeError("could not draw a non-IID split with enough samples per client")


class Trainer:
    """The model, the data, and local training with the SDK's ``train_update``."""

    def __init__(self, data: Data, seed: int) -> None:
        import torch

        self.torch = torch
        self.data = data
        self.seed = seed
        torch.manual_seed(seed)
        self.module = torch.nn.Sequential(
            torch.nn.Linear(64, HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, 10)
        )
        self.layout = layout_of(self.module)

    def init_weights(self) -> F64:
        return np.concatenate(
            [p.detach().double().reshape(-1).numpy() for p in self.module.parameters()]
        )

    def _loader(
        self, x: npt.NDArray[np.float32], y: npt.NDArray[np.int64], rng: np.random.Generator
    ) -> list[tuple[Any, Any]]:
        """``LOCAL_STEPS`` minibatches: passes over the client's data in a fresh order each."""
        t = self.torch
        m = len(y)
        order, pos, out = rng.permutation(m), 0, []
        for _ in range(LOCAL_STEPS):
            if pos + BATCH > m:
                order, pos = rng.permutation(m), 0
            b = order[pos : pos + BATCH]
            pos += BATCH
            out.append((t.from_numpy(x[b]), t.from_numpy(y[b])))
        return out

    def local_delta(
        self,
        base: F64,
        idx: npt.NDArray[np.int64],
        epoch: int,
        client: int,
        *,
        flip_labels: bool = False,
        params: TaskParams,
    ) -> F64:
        """Honest local training from ``base`` on the client's samples (the same minibatches
        for the same (seed, epoch, client)); the float delta in layout order."""
        x, y = self.data.x_train[idx], self.data.y_train[idx]
        if flip_labels:
            y = 9 - y
        rng = np.random.default_rng([self.seed, epoch, client])
        return train_update(self.module, self._loader(x, y, rng), params, base, epochs=1, lr=LR)

    def accuracy(self, w: F64, params: TaskParams) -> float:
        t = self.torch
        unflatten_into(self.module, w, params)
        with t.no_grad():
            out = self.module(t.from_numpy(self.data.x_test))
        return float((out.argmax(dim=1).numpy() == self.data.y_test).mean())

    def calibrate_shift(self, params: TaskParams, w0: F64) -> tuple[int, float]:
        """The requester picks the quantization scale from a local run on its own held-out
        data: ``shift = floor(log2(127 / p99.9 |delta|))`` (at most ~0.1% of an epoch-0 update
        clips to the int8 range)."""
        rng = np.random.default_rng([self.seed, 999])
        loader = self._loader(self.data.x_test, self.data.y_test, rng)
        delta = train_update(self.module, loader, params, w0, epochs=1, lr=LR)
        p999 = float(np.quantile(np.abs(delta), 0.999))
        return max(0, min(24, math.floor(math.log2(127.0 / p999)))), p999


# ------------------------------------------------------------------------------ attacks


def pick_copy(peers: Sequence[npt.NDArray[Any]]) -> int | None:
    """The copier's pick: the most typical non-zero update (median norm), which looks like
    honest work."""
    nonzero = [k for k, p in enumerate(peers) if np.any(p)]
    if not nonzero:
        return None
    norms = [float(np.linalg.norm(peers[k].astype(np.float64))) for k in nonzero]
    return nonzero[int(np.argsort(norms)[len(norms) // 2])]


def median_norm(peers: Sequence[npt.NDArray[Any]]) -> float:
    norms = [float(np.linalg.norm(p.astype(np.float64))) for p in peers if np.any(p)]
    return float(np.median(norms)) if norms else 0.0


def craft(
    role: str,
    trainer: Trainer,
    params: TaskParams,
    base: F64,
    idx: npt.NDArray[np.int64],
    epoch: int,
    client: int,
    peers: Sequence[npt.NDArray[Any]] = (),
) -> F64:
    """A client's float delta for this epoch. ``peers``: the integer updates already sent
    this epoch (what the second-wave free riders read from the chain)."""
    scale = float(2**params.shift)
    rng = np.random.default_rng([trainer.seed, epoch, client, 7])
    if role == "honest":
        return trainer.local_delta(base, idx, epoch, client, params=params)
    if role == "signflip":
        return -SIGNFLIP_K * trainer.local_delta(base, idx, epoch, client, params=params)
    if role == "gauss":
        own = trainer.local_delta(base, idx, epoch, client, params=params)
        rms = float(np.sqrt(np.mean(own**2)))
        return rng.normal(0.0, GAUSS_SCALE * rms, params.d)
    if role == "labelflip":
        return trainer.local_delta(base, idx, epoch, client, flip_labels=True, params=params)
    if role == "fr_zero":
        return np.zeros(params.d)
    if role == "fr_copy":
        k = pick_copy(peers)
        if k is None:
            return np.zeros(params.d)
        return peers[k].astype(np.float64) / scale  # quantizes back to the very same integers
    if role == "fr_noise":
        v = rng.normal(0.0, 1.0, params.d)
        return v * (median_norm(peers) / float(np.linalg.norm(v))) / scale
    raise ValueError(f"unknown role {role!r}")


# ------------------------------------------------------------------------------ participants


@dataclass
class Member:
    name: str
    role: str
    mps: MPSClient
    index: int  # position in the federation: its data part, its minibatch stream
    slashable: bool = False
    strikes: int = 0
    reason_names: list[str] = field(default_factory=list)
    slash_epoch: int | None = None
    lost: str = ""  # why it stopped submitting otherwise (e.g. its stake went away)
    missed: str = ""  # why its update of the current epoch did not go in
    scores: list[int | None] = field(default_factory=list)
    flags: list[int] = field(default_factory=list)
    l1_status: str = ""
    reward_wei: int | None = None
    reward_note: str = ""

    @property
    def key(self) -> bytes:
        return self.mps.require_key().public_key

    @property
    def honest(self) -> bool:
        return self.role == "honest"

    @property
    def label(self) -> str:
        return f"{self.name} {self.role}"


def log(msg: str = "") -> None:
    print(msg, flush=True)


def find_rpc(devnet: Path) -> str:
    """The RPC URL from ``<devnet>/node.log`` (the last ``rpc listening`` line), else 8645."""
    logfile = devnet / "node.log"
    url = ""
    if logfile.exists():
        for line in logfile.read_text(errors="replace").splitlines():
            if "rpc listening" in line:
                m = re.search(r"http://[^\s\"',]+", line)
                if m:
                    url = m.group(0)
    return url or "http://127.0.0.1:8645/"


def _transfer(admin: L1, to: str, wei: int, nonce: int) -> bytes:
    w3 = admin.w3
    tx = {
        "to": to,
        "value": wei,
        "gas": 21_000,
        "gasPrice": int(w3.eth.gas_price),
        "nonce": nonce,
        "chainId": int(w3.eth.chain_id),
    }
    signed = admin.account.sign_transaction(tx)
    return bytes(w3.eth.send_raw_transaction(signed.raw_transaction))


def gather_clients(devnet: Path, rpc: str, want: int) -> list[tuple[str, MPSClient]]:
    """``want`` clients staked on the L1 and in the rollup: the dev clients first, then the
    demo's earlier replacements, then fresh replacements for the rest."""
    l1dir = devnet / "l1"
    store = devnet / "demo-clients"
    out: list[tuple[str, MPSClient]] = []
    skipped: list[str] = []
    candidates: list[tuple[str, Keypair, L1Config]] = []
    for i in range(N_CLIENTS):
        p = devnet / "dev-clients" / f"client{i}.key"
        if p.exists():
            candidates.append(
                (f"client{i}", Keypair.load(p), L1Config.from_devnet(devnet, f"client{i}"))
            )
    if store.exists():
        for p in sorted(store.glob("r*.key"), key=lambda q: int(q.stem[1:])):
            cfg = L1Config.from_files(
                (l1dir / "endpoint").read_text().strip(),
                p.with_suffix(".l1key"),
                l1dir / "deployment.json",
            )
            candidates.append((p.stem, Keypair.load(p), cfg))
    for name, key, cfg in candidates:
        if len(out) == want:
            break
        mps = MPSClient(rpc, key, cfg)
        status = mps.l1.status(key.public_key)
        if status == "staked":
            out.append((name, mps))
        else:
            skipped.append(f"{name} ({status})")
    if skipped:
        log(f"  not staked on the L1, left out: {', '.join(skipped)}")
    with ThreadPoolExecutor(max(1, len(out))) as pool:  # the rollup follows the L1 closely
        list(pool.map(lambda nm: nm[1].wait_for_stake(60.0), out))
    missing = want - len(out)
    if missing <= 0:
        return out
    # fresh keys staked from fresh L1 accounts the admin funds (an L1 account binds one key)
    from eth_account import Account

    admin = L1(L1Config.from_devnet(devnet, "admin"))
    store.mkdir(parents=True, exist_ok=True)
    used = [int(q.stem[1:]) for q in store.glob("r*.key")]
    first = max(used, default=-1) + 1
    log(f"  staking {missing} replacement clients (fresh keys, L1 accounts funded by the admin)")
    nonce = int(admin.w3.eth.get_transaction_count(admin.account.address, "pending"))
    fresh: list[tuple[str, MPSClient]] = []
    hashes = []
    for k in range(missing):
        name = f"r{first + k}"
        acct = Account.create()
        key = Keypair.generate()
        key.save(store / f"{name}.key")
        l1key = store / f"{name}.l1key"
        l1key.write_text(acct.key.hex() + "\n")
        l1key.chmod(0o600)
        cfg = L1Config.from_files(admin.cfg.rpc_url, l1key, l1dir / "deployment.json")
        fresh.append((name, MPSClient(rpc, key, cfg)))
        hashes.append(_transfer(admin, acct.address, REPLACEMENT_FUNDS_WEI, nonce + k))
    for h in hashes:
        admin.w3.eth.wait_for_transaction_receipt(h, timeout=60)  # type: ignore[arg-type]
    with ThreadPoolExecutor(len(fresh)) as pool:
        list(pool.map(lambda nm: nm[1].stake(), fresh))
        list(pool.map(lambda nm: nm[1].wait_for_stake(60.0), fresh))
    return out + fresh


# ------------------------------------------------------------------------------ the run


@dataclass
class Options:
    devnet: Path
    rpc: str
    epochs: int
    out: Path
    seed: int


def chain_peers(
    mps: MPSClient, task_id: bytes, epoch: int, since: int, d: int
) -> list[tuple[bytes, I64]]:
    """``(sender, update)`` of every update sent to ``task_id`` for ``epoch`` so far, read from
    the chain's blocks (``submit_update`` transactions from height ``since`` on), in order."""
    out: list[tuple[bytes, I64]] = []
    head = int(mps.rpc.call("mps_blockNumber"))
    for h in range(since, head + 1):
        for tx in mps.block(h, full=True)["transactions"]:
            if tx.get("typeName") != "submit_update":
                continue
            rc = mps.receipt(as_bytes(tx["hash"]))
            if rc is None or int(rc["status"]) != 1:
                continue
            tid, ep, data = encoding.decode(as_bytes(tx["payload"]))
            if tid == task_id and ep == epoch and isinstance(data, bytes) and len(data) == d:
                out.append((as_bytes(tx["sender"]), np.frombuffer(data, np.int8).astype(np.int64)))
    return out


def submit_all(
    ex: ThreadPoolExecutor, task_id: bytes, epoch: int, wave: list[tuple[Member, F64]]
) -> None:
    """Every member of the wave sends its update at once; each waits for its inclusion."""

    def submit(item: tuple[Member, F64]) -> None:
        m, delta = item
        m.missed = ""
        try:
            m.mps.submit_update(task_id, epoch, delta)
        except WrongEpoch:
            m.missed = "missed the epoch: its window closed before the update went in"
        except (RPCError, SDKError) as exc:
            m.lost = f"stopped in epoch {epoch}: {type(exc).__name__}: {exc}"

    list(ex.map(submit, wave))


def wait_epoch(mps: MPSClient, task_id: bytes, epoch: int, timeout: float) -> dict[str, Any]:
    """Wait for the epoch to close. Slashable clients never submit again, so after the first
    slashing an epoch closes when its window of blocks has passed; the dev node seals a block
    only when a transaction waits, so the requester sends a small record per block meanwhile."""
    deadline = time.monotonic() + timeout
    beats = 0
    while True:
        try:
            return mps.epoch(task_id, epoch)
        except NotFound:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"epoch {epoch} did not close within {timeout:.0f} s")
        beats += 1
        value = f"{epoch}.{beats}".encode()

        def beat(k: Keypair, c: int, n: int, v: bytes = value) -> Transaction:
            return put_record(k, c, n, "demo/heartbeat", v)

        mps.transact(beat)  # waits for its block


def fmt_flags(flags: int) -> str:
    return "|".join(flag_names(flags)) or "-"


class Federation:
    """One demo run: the requester, the members, the task, and the local comparison runs."""

    def __init__(self, opts: Options, members: list[Member], data: Data) -> None:
        self.opts = opts
        self.members = members
        self.data = data
        self.trainer = Trainer(data, opts.seed)
        self.w0 = self.trainer.init_weights()
        self.requester = MPSClient(
            opts.rpc, Keypair.generate(), L1Config.from_devnet(opts.devnet, "admin")
        )
        self.ex = ThreadPoolExecutor(len(members) + 1)
        self.task_id = b""
        self.params: TaskParams | None = None
        self.epochs: list[int] = []
        self.acc_chain: list[float] = []
        self.acc_fedavg: list[float] = []
        self.acc_honest: list[float] = []
        self.reports: list[Future[bytes]] = []

    @property
    def p(self) -> TaskParams:
        assert self.params is not None
        return self.params

    # -- the requester creates and funds the task; the clients join
    def create_task(self) -> None:
        draft = TaskParams(
            name=f"demo-digits-{int(time.time())}",
            layout=self.trainer.layout,
            dtype="int8",
            shift=0,
            init_model=bytes(32),  # create_task fills in the uploaded blobs' ids
            script=bytes(32),
            epochs=self.opts.epochs,
            target_accuracy_ppm=1_000_000,  # no early stop: run every epoch
            min_clients=MIN_CLIENTS,
            max_clients=len(self.members),
            window_blocks=WINDOW_BLOCKS,
            evaluator=bytes(32),
            rules=EpochRules(f=F),
        )
        shift, p999 = self.trainer.calibrate_shift(draft, self.w0)
        draft = dataclasses.replace(draft, shift=shift)
        script = Path(__file__).read_bytes()
        req = self.requester
        self.task_id = req.create_task(draft, self.w0, script, DEPOSIT_WEI)
        self.params = req.task_params(self.task_id)
        log(
            f"  task {self.task_id.hex()}\n"
            f"  requester {req.require_key().public_key.hex()[:12]} (ed25519, fresh), L1 account"
            f" {req.l1.address} (the dev admin); funded with {DEPOSIT_WEI / ETH:g} ETH\n"
            f"  model: MLP 64-{HIDDEN}-10, d = {self.p.d}, int8 updates at shift {shift}"
            f" (p99.9 |delta| {p999:.3f}); script blob {fl.script_cid(script)} (this file)\n"
            f"  {self.opts.epochs} epochs, window {WINDOW_BLOCKS} blocks; rules f = {F},"
            f" min_clients {MIN_CLIENTS} (> 2f + 2, and within the honest clients),"
            f" krum_ratio 3, strikes_to_slash 2"
        )
        list(self.ex.map(lambda m: m.mps.join(self.task_id), self.members))
        log(f"  {len(self.members)} clients joined")

    # -- one epoch on the chain
    def run_epoch(self, e: int) -> bool:
        t0 = time.monotonic()
        req, p = self.requester, self.p
        task = req.task(self.task_id)
        if task["status"] != "open":
            log(f"  the task is {task['status']}; stopping")
            return False
        base = req.base_model(self.task_id, e)
        active = [m for m in self.members if not m.slashable and not m.lost]
        first = [m for m in active if m.role not in SECOND_WAVE]
        second = [m for m in active if m.role in SECOND_WAVE]
        parts = self.data.parts
        wave = [
            (m, craft(m.role, self.trainer, p, base, parts[m.index], e, m.index)) for m in first
        ]
        submit_all(self.ex, self.task_id, e, wave)
        note = ""
        if second:  # they read the first wave's updates from the chain
            sent = chain_peers(req, self.task_id, e, int(task["epochStart"]), p.d)
            peers = [u for _, u in sent]
            wave = [
                (m, craft(m.role, self.trainer, p, base, parts[m.index], e, m.index, peers))
                for m in second
            ]
            submit_all(self.ex, self.task_id, e, wave)
            names = {m.key: m.name for m in self.members}
            what = []
            for m in second:
                k = pick_copy(peers)
                if m.role == "fr_copy" and k is not None:
                    what.append(f"{m.name} copied {names.get(sent[k][0], '?')}'s")
                elif m.role == "fr_noise":
                    what.append(f"{m.name} sent noise of their median norm")
            note = f"second wave read {len(sent)} updates from the chain: {'; '.join(what)}"
        summary = wait_epoch(req, self.task_id, e, timeout=120.0)

        # the requester evaluates the new model on its held-out data and reports it; the report
        # goes in while the clients train the next epoch
        w_next = fl.read_model(req.blob, as_bytes(summary["nextBaseModel"]), p)
        acc = self.trainer.accuracy(w_next, p)
        self.reports.append(self.ex.submit(req.report_evaluation, self.task_id, e, acc))
        self.epochs.append(e)
        self.acc_chain.append(acc)
        self.record(summary, e)
        fa, ho = self.compare(e)
        log(
            f"epoch {e}: {len(summary['records'])} updates, closed in block {summary['closedAt']}"
            f" ({time.monotonic() - t0:.1f} s); accuracy {acc:.3f}"
            f"  (plain FedAvg of all updates {fa:.3f}; honest clients alone {ho:.3f})"
        )
        for m in self.members:
            score = m.scores[-1]
            if score is None:
                why = m.lost or m.missed or ("slashable: sends nothing" if m.slashable else "-")
                log(f"    {m.name:9s} {m.role:9s} {'':>9s}  {why}")
                continue
            flags = m.flags[-1]
            verdict = ""
            if flags and m.slashable and m.slash_epoch == e:
                verdict = f"SLASHABLE ({', '.join(m.reason_names)})"
            elif flags:
                verdict = f"strike {m.strikes}"
            log(f"    {m.name:9s} {m.role:9s} {score:9.3g}  {fmt_flags(flags):26s} {verdict}")
        if note:
            log(f"    ({note})")
        return True

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
            if st.slashable and not m.slashable:
                m.slashable = True
                m.reason_names = list(st.reason_names)
                m.slash_epoch = st.slash_epoch

        list(self.ex.map(refresh, flagged))

    # -- the same federation, locally: plain FedAvg of every update, and the honest alone
    def compare(self, e: int) -> tuple[float, float]:
        p, parts, tr = self.p, self.data.parts, self.trainer
        scale = float(2**p.shift)
        if e == 0:
            self.w_fa, self.w_ho = self.w0.copy(), self.w0.copy()
        ups: list[I64] = []
        for m in sorted(self.members, key=lambda m: m.role in SECOND_WAVE):
            delta = craft(m.role, tr, p, self.w_fa, parts[m.index], e, m.index, ups)
            ups.append(quantize(delta, p.shift).astype(np.int64))
        self.w_fa = self.w_fa + np.mean(ups, axis=0) / scale
        hon = [
            quantize(tr.local_delta(self.w_ho, parts[m.index], e, m.index, params=p), p.shift)
            for m in self.members
            if m.honest
        ]
        self.w_ho = self.w_ho + np.mean(np.stack(hon).astype(np.int64), axis=0) / scale
        self.acc_fedavg.append(tr.accuracy(self.w_fa, p))
        self.acc_honest.append(tr.accuracy(self.w_ho, p))
        return self.acc_fedavg[-1], self.acc_honest[-1]

    # -- after the last epoch: verdicts, the L1, rewards
    def finish(self) -> dict[str, Any]:
        for r in self.reports:
            r.result()
        req, members, task_id = self.requester, self.members, self.task_id
        head = int(req.rpc.call("mps_blockNumber"))
        log(f"\n## L1: waiting for a finalized batch up to block {head}")
        t0 = time.monotonic()
        l1 = req.l1
        while True:
            fb = l1.finalized_batch()
            if fb is not None and fb[2] >= head:
                break
            if time.monotonic() - t0 > 180:
                raise TimeoutError("no finalized batch reached the task's last block in 180 s")
            time.sleep(0.5)
        log(
            f"  batch {fb[0]} (blocks up to {fb[2]}) final after {time.monotonic() - t0:.1f} s"
            " (committed by the node's poster, then the dev challenge window of 5 L1 blocks)"
        )

        log("\n## verdicts (mps_getSlashingState, every proof checked against the L1 batch root)")
        states = list(self.ex.map(lambda m: m.mps.slashing_state(task_id, trust="l1"), members))
        caught: list[str] = []
        missed: list[str] = []
        honest_slashed: list[str] = []
        for m, st in zip(members, states, strict=True):
            m.slashable, m.strikes = st.slashable, st.strikes
            if st.slashable:
                m.reason_names, m.slash_epoch = list(st.reason_names), st.slash_epoch
            flagged_epochs = [r["epoch"] for r in st.records if r["flags"]]
            if st.slashable:
                what = f"SLASHABLE in epoch {st.slash_epoch}: {', '.join(st.reason_names)}"
            elif flagged_epochs:
                what = f"{st.strikes} strike(s) (epochs {flagged_epochs}), not slashable"
            else:
                what = "clean"
            log(f"  {m.name:9s} {m.role:9s} {what}   [{st.verified_against}]")
            if not m.honest:
                (caught if st.slashable else missed).append(m.role)
            elif st.slashable:
                honest_slashed.append(m.name)
        log(f"  caught: {', '.join(caught) or 'none'}")
        for m in members:
            if not m.honest and not m.slashable:
                log(f"  not caught: {m.role} (bench/detection.py: {EXPECTED[m.role]})")
        log(f"  honest clients slashed: {', '.join(honest_slashed) or 'none'}")

        log("\n## L1: slashes and settlement (the node's aggregator acts on the finalized root)")
        t0 = time.monotonic()
        want = [m for m in members if m.slashable]
        while True:
            got = self.ex.map(lambda m: m.mps.l1.status(m.key), members)
            statuses = {m.name: st for m, st in zip(members, got, strict=True)}
            info = l1.task(task_id)
            if info["settled"] and all(statuses[m.name] == "slashed" for m in want):
                break
            if time.monotonic() - t0 > 120:
                log("  (timed out waiting for the aggregator)")
                break
            time.sleep(0.5)
        for m in members:
            m.l1_status = statuses[m.name]
        log(f"  after {time.monotonic() - t0:.1f} s; StakingRegistry.statusOf:")
        for m in members:
            if not m.honest:
                log(f"    {m.name:9s} {m.role:9s} {m.l1_status}")
        honest_status = sorted({m.l1_status for m in members if m.honest})
        log(f"    honest clients: {', '.join(honest_status)}")
        log(
            f"  RewardManager: settled {info['settled']}, reward pool {info['pool']} wei"
            f" ({info['pool'] / ETH:.4f} ETH: min(epochs x fee per epoch, deposit) less the"
            f" protocol's share), {info['totalCleanUpdates']} clean updates; a client that was"
            " never flagged gets pool x its updates / the clean updates"
        )

        log("\n## rewards (claim_rewards: each reward leaf proven against the settlement root)")

        def claim(m: Member) -> None:
            try:
                m.reward_wei = m.mps.claim_rewards(task_id)
            except (SDKError, RPCError, ValueError) as exc:
                m.reward_note = str(exc)
            except Exception as exc:  # a contract revert (web3), e.g. claimed already
                m.reward_note = f"claim failed: {type(exc).__name__}: {exc}"

        list(self.ex.map(claim, members))
        paid = 0
        for m in members:
            if m.reward_wei is None:
                log(f"  {m.name:9s} {m.role:9s} {m.reward_note}")
                continue
            paid += m.reward_wei
            log(
                f"  {m.name:9s} {m.role:9s} paid {m.reward_wei} wei"
                f" ({m.reward_wei / ETH:.4f} ETH) to its staker {m.mps.l1.address}"
            )
        log(f"  total paid: {paid} wei ({paid / ETH:.4f} ETH)")
        owed, refunded = l1.contract("RewardManager").functions.refundOf(task_id).call()
        refund = 0
        if int(owed) and not refunded:
            refund = l1.withdraw_refund(task_id)
        log(
            f"  requester refund (the deposit beyond the fee): {refund} wei"
            f" ({refund / ETH:.4f} ETH)"
        )
        return {
            "task": task_id.hex(),
            "shift": self.p.shift,
            "epochs": self.epochs,
            "accuracy": self.acc_chain,
            "fedavg_all": self.acc_fedavg,
            "fedavg_honest": self.acc_honest,
            "clients": [
                {
                    "name": m.name,
                    "role": m.role,
                    "key": m.key.hex(),
                    "slashable": m.slashable,
                    "reason": m.reason_names,
                    "slash_epoch": m.slash_epoch,
                    "strikes": m.strikes,
                    "scores": m.scores,
                    "flags": [flag_names(f) for f in m.flags],
                    "l1_status": m.l1_status,
                    "reward_wei": m.reward_wei,
                }
                for m in members
            ],
            "caught": caught,
            "missed": missed,
            "honest_slashed": honest_slashed,
            "pool_wei": info["pool"],
            "paid_wei": paid,
            "refund_wei": refund,
        }

    def figure(self) -> DemoFigure:
        return DemoFigure(
            epochs=self.epochs,
            robust=self.acc_chain,
            fedavg=self.acc_fedavg,
            honest_only=self.acc_honest,
            clients=[
                ClientSeries(m.label, m.role, m.scores, [bool(f) for f in m.flags], m.slash_epoch)
                for m in self.members
            ],
            title=(
                f"MPS chain demo: {len(self.members)} clients on non-IID digits,"
                f" {sum(not m.honest for m in self.members)} of them cheating"
            ),
        )


def run(opts: Options) -> dict[str, Any]:
    t_start = time.monotonic()
    import torch

    torch.set_num_threads(1)  # a 2,410-parameter MLP: threads cost more than they give
    log(f"# MPS chain demo federation: node {opts.rpc}, dev L1 from {opts.devnet}/l1/")
    probe = MPSClient(opts.rpc)
    try:
        chain_id = probe.chain_id
    except RPCError as exc:
        raise SystemExit(
            f"no MPS node answers at {opts.rpc} ({exc}); start one with `bash scripts/dev.sh"
            f" --no-demo` or `mps-node dev --datadir {opts.devnet}`"
        ) from None
    if not (opts.devnet / "l1" / "endpoint").exists():
        raise SystemExit(f"{opts.devnet}/l1/endpoint is missing: is `mps-node dev` running?")
    log(f"  chain {chain_id}, head {probe.rpc.call('mps_blockNumber')}")

    log("\n## clients (staked on the L1)")
    pool = gather_clients(opts.devnet, opts.rpc, len(ROLES))
    data = load_data(len(pool), opts.seed)
    members = [Member(name, ROLES[k], mps, k) for k, (name, mps) in enumerate(pool)]
    for m in members:
        idx = data.parts[m.index]
        classes = np.bincount(data.y_train[idx], minlength=10)
        top = ", ".join(f"{c}:{classes[c]}" for c in np.argsort(-classes)[:3])
        what = "" if m.honest else ATTACKS[m.role]
        log(f"  {m.name:9s} {m.key.hex()[:12]}  {len(idx):3d} samples (most {top:14s})"
            f"  {m.role:9s} {what}")  # fmt: skip

    fed = Federation(opts, members, data)
    try:
        log("\n## task")
        fed.create_task()
        log("\n## epochs (score: Krum score; flags: this epoch's; verdicts from the chain)")
        for e in range(opts.epochs):
            if not fed.run_epoch(e):
                break
        t_fl = time.monotonic() - t_start
        results = fed.finish()
    finally:
        fed.ex.shutdown(wait=False, cancel_futures=True)

    log("\n## summary")
    log("  epoch            " + " ".join(f"{e:6d}" for e in fed.epochs))
    log("  MPS chain        " + " ".join(f"{a:6.3f}" for a in fed.acc_chain))
    log("  FedAvg, all      " + " ".join(f"{a:6.3f}" for a in fed.acc_fedavg))
    log("  FedAvg, honest   " + " ".join(f"{a:6.3f}" for a in fed.acc_honest))
    opts.out.mkdir(parents=True, exist_ok=True)
    if have_matplotlib():
        png = plot(fed.figure(), opts.out / "demo.png")
        log(f"  wrote {png}")
        results["png"] = str(png)
    else:
        log("  matplotlib is not installed (pip install -e '.[demo]'): no PNG")
    results["seconds_federation"] = round(t_fl, 1)
    results["seconds_total"] = round(time.monotonic() - t_start, 1)
    (opts.out / "demo.json").write_text(json.dumps(results, indent=1) + "\n")
    log(f"  wrote {opts.out / 'demo.json'}")
    log(
        f"# done in {results['seconds_total']:.0f} s ({results['seconds_federation']:.0f} s of"
        " federation, the rest waiting for L1 finality and settlement)"
    )
    return results


def main(argv: list[str] | None = None) -> int:
    doc = __doc__ or ""
    ap = argparse.ArgumentParser(prog="python -m client_sdk.demo", description=doc.split("\n\n")[0])
    ap.add_argument("--devnet", type=Path, default=Path("./devnet"), help="mps-node dev's datadir")
    ap.add_argument("--rpc", default=None, help="node RPC URL (default: from <devnet>/node.log)")
    ap.add_argument("--epochs", type=int, default=None, help="FL epochs (10; --quick: 6)")
    ap.add_argument("--out", type=Path, default=None, help="output folder (<devnet>/demo)")
    ap.add_argument("--seed", type=int, default=0, help="data split and model seed")
    ap.add_argument("--quick", action="store_true", help="6 epochs (for tests)")
    args = ap.parse_args(argv)
    devnet: Path = args.devnet
    run(
        Options(
            devnet=devnet,
            rpc=args.rpc or find_rpc(devnet),
            epochs=args.epochs or (6 if args.quick else 10),
            out=args.out or devnet / "demo",
            seed=args.seed,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
