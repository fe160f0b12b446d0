"""Federated-learning simulation for ``bench/detection.py``: data, model, clients, attacks.

Pure numpy (plus scikit-learn's bundled ``load_digits``, no download). Everything on the
simulation side is float64; what crosses to the STF is the protocol's int8 quantized delta
``q = clip(round(delta * 2**shift), -127, 127)``.

* Data: ``load_digits`` (1,797 x 64, 10 classes), pixels scaled to [0, 1] (divided by 16),
  a stratified held-out test split, the training part split over the clients either IID
  (a random permutation cut into equal parts) or non-IID (per class, Dirichlet(alpha)
  proportions over the clients; redrawn until every client holds ``min_samples``).
* Model: softmax regression (``d = 64*10 + 10 = 650``) or a one-hidden-layer tanh MLP
  (``d = 64*h + h + h*10 + 10``; 2,410 for h = 32), parameters as one flat float64 vector.
* Local training: from the current global model, ``local_steps`` minibatch SGD steps
  (cross-entropy, batch ``batch``, learning rate ``lr``); the delta is local - global.
  Each client's minibatch stream is seeded by (seed, epoch, client), so an honest client
  computes the same delta from the same global model in every run.
* Quantization shift (fixed per task): calibrated once per (split, seed) on the honest
  epoch-0 deltas of all clients from the initial model, the largest epoch's deltas:
  ``shift = floor(log2(127 / p999))`` with ``p999`` the 99.9th percentile of ``|delta|``.
  Epoch-0 deltas then use the int8 range with at most ~0.1% of coordinates clipped; later
  deltas shrink as training converges and use fewer levels (the protocol's fixed-shift
  trade-off).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]


@dataclass(frozen=True)
class SimConfig:
    model: str = "softmax"  # or "mlp"
    hidden: int = 32
    n_clients: int = 20
    epochs: int = 10
    local_steps: int = 10
    batch: int = 16
    lr: float = 0.5
    test_frac: float = 0.25
    alpha: float = 0.5  # Dirichlet concentration of the non-IID split
    min_samples: int = 10


@cache
def _digits() -> tuple[F64, npt.NDArray[np.int64]]:
    from sklearn.datasets import load_digits

    ds = load_digits()
    return np.asarray(ds.data, dtype=np.float64) / 16.0, np.asarray(ds.target, dtype=np.int64)


def quantize(delta: F64, shift: int) -> I8:
    """The protocol's quantization: ``clip(round(delta * 2**shift), -127, 127)`` as int8."""
    return np.clip(np.round(delta * float(2**shift)), -127, 127).astype(np.int8)


class Model:
    """Flat-vector softmax regression or one-hidden-layer tanh MLP."""

    def __init__(self, kind: str, n_in: int, n_out: int, hidden: int) -> None:
        self.kind = kind
        self.n_in, self.n_out, self.hidden = n_in, n_out, hidden
        if kind == "softmax":
            self.shapes = [(n_in, n_out), (n_out,)]
        elif kind == "mlp":
            self.shapes = [(n_in, hidden), (hidden,), (hidden, n_out), (n_out,)]
        else:
            raise ValueError(f"unknown model {kind!r}")
        self.sizes = [math.prod(s) for s in self.shapes]
        self.d = sum(self.sizes)

    def unpack(self, w: F64) -> list[F64]:
        out, off = [], 0
        for shape, size in zip(self.shapes, self.sizes, strict=True):
            out.append(w[off : off + size].reshape(shape))
            off += size
        return out

    def init(self, rng: np.random.Generator) -> F64:
        if self.kind == "softmax":
            return np.zeros(self.d)
        w1 = rng.normal(0.0, 1.0 / math.sqrt(self.n_in), (self.n_in, self.hidden))
        w2 = rng.normal(0.0, 1.0 / math.sqrt(self.hidden), (self.hidden, self.n_out))
        return np.concatenate([w1.ravel(), np.zeros(self.hidden), w2.ravel(), np.zeros(10)])

    def logits(self, w: F64, x: F64) -> F64:
        p = self.unpack(w)
        if self.kind == "softmax":
            return x @ p[0] + p[1]
        h = np.tanh(x @ p[0] + p[1])
        return h @ p[2] + p[3]

    def grad(self, w: F64, x: F64, y: npt.NDArray[np.int64]) -> F64:
        """Gradient of the mean cross-entropy on (x, y)."""
        p = self.unpack(w)
        m = x.shape[0]
        if self.kind == "softmax":
            z = x @ p[0] + p[1]
        else:
            h = np.tanh(x @ p[0] + p[1])
            z = h @ p[2] + p[3]
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e / e.sum(axis=1, keepdims=True)
        s[np.arange(m), y] -= 1.0
        s /= m
        if self.kind == "softmax":
            return np.concatenate([(x.T @ s).ravel(), s.sum(axis=0)])
        gw2 = h.T @ s
        gb2 = s.sum(axis=0)
        dh = (s @ p[2].T) * (1.0 - h * h)
        return np.concatenate([(x.T @ dh).ravel(), dh.sum(axis=0), gw2.ravel(), gb2])

    def accuracy(self, w: F64, x: F64, y: npt.NDArray[np.int64]) -> float:
        return float(np.mean(np.argmax(self.logits(w, x), axis=1) == y))


def _split_noniid(
    y: npt.NDArray[np.int64], n: int, alpha: float, min_samples: int, rng: np.random.Generator
) -> list[npt.NDArray[np.int64]]:
    classes = np.unique(y)
    for _ in range(1000):
        parts: list[list[int]] = [[] for _ in range(n)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(y == c))
            props = rng.dirichlet(np.full(n, alpha))
            cuts = (np.cumsum(props)[:-1] * len(idx)).astype(int)
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[k].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_samples:
            return [np.array(sorted(p), dtype=np.int64) for p in parts]
    raise RuntimeError("could not draw a non-IID split with enough samples per client")


@dataclass
class Task:
    cfg: SimConfig
    split: str
    seed: int
    model: Model
    x_train: F64
    y_train: npt.NDArray[np.int64]
    x_test: F64
    y_test: npt.NDArray[np.int64]
    parts: list[npt.NDArray[np.int64]]
    init: F64
    shift: int
    p999: float  # the calibration figure the shift came from

    def rng(self, epoch: int, client: int, salt: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch, client, salt])

    def local_delta(self, w: F64, client: int, epoch: int, *, flip_labels: bool = False) -> F64:
        """``local_steps`` of minibatch SGD from ``w`` on the client's data; returns local - w."""
        cfg = self.cfg
        idx = self.parts[client]
        x, y = self.x_train[idx], self.y_train[idx]
        if flip_labels:
            y = 9 - y
        rng = self.rng(epoch, client)
        local = w.copy()
        m = len(idx)
        order = rng.permutation(m)
        pos = 0
        for _ in range(cfg.local_steps):
            if pos + cfg.batch > m:
                order = rng.permutation(m)
                pos = 0
            b = order[pos : pos + cfg.batch]
            pos += cfg.batch
            local -= cfg.lr * self.model.grad(local, x[b], y[b])
        return local - w

    def accuracy(self, w: F64) -> float:
        return self.model.accuracy(w, self.x_test, self.y_test)


def make_task(cfg: SimConfig, split: str, seed: int) -> Task:
    from sklearn.model_selection import train_test_split

    x, y = _digits()
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=cfg.test_frac, random_state=seed, stratify=y
    )
    rng = np.random.default_rng([seed, 12345])
    if split == "iid":
        parts = [np.sort(p) for p in np.array_split(rng.permutation(len(y_tr)), cfg.n_clients)]
    elif split == "noniid":
        parts = _split_noniid(y_tr, cfg.n_clients, cfg.alpha, cfg.min_samples, rng)
    else:
        raise ValueError(f"unknown split {split!r}")
    model = Model(cfg.model, x.shape[1], 10, cfg.hidden)
    init = model.init(rng)
    task = Task(cfg, split, seed, model, x_tr, y_tr, x_te, y_te, parts, init, 0, 0.0)
    deltas = np.stack([task.local_delta(init, c, 0) for c in range(cfg.n_clients)])
    p999 = float(np.quantile(np.abs(deltas), 0.999))
    task.p999 = p999
    task.shift = math.floor(math.log2(127.0 / p999))
    return task


# --------------------------------------------------------------------------- attacks

ATTACKS = (
    "signflip",
    "gauss",
    "labelflip",
    "alie",
    "ipm0.1",
    "ipm2",
    "fr_zero",
    "fr_copy",
    "fr_disguised",
    "fr_delta",
    "fr_delta_jitter",
)
FREE_RIDERS = ("fr_zero", "fr_copy", "fr_disguised", "fr_delta", "fr_delta_jitter")


@dataclass(frozen=True)
class AttackParams:
    signflip_k: float = 4.0  # sign flip sends -k x its own honest delta
    gauss_scale: float = 10.0  # Gaussian: per-coordinate sigma = scale x honest RMS coordinate
    alie_z: float = 1.0
    jitter: float = 0.05  # fr_delta_jitter: noise norm / previous global step norm


def craft(
    attack: str,
    task: Task,
    w: F64,
    epoch: int,
    attacker: int,
    honest: list[F64],
    earlier: list[I8],
    prev_global: npt.NDArray[Any] | None,
    ap: AttackParams,
) -> I8:
    """One attacker's int8 submission.

    ``honest`` are this epoch's float deltas of the honest clients (the attacks are
    omniscient: ALIE, IPM, the disguised free rider and the Gaussian scale see them);
    ``earlier`` the int8 updates submitted before this one this epoch; ``prev_global``
    the previous epoch's aggregate (quantized units) or ``None`` in the first epoch.
    """
    rng = task.rng(epoch, attacker, salt=7)
    shift = task.shift
    d = task.model.d
    hmat = np.stack(honest)
    typical_norm = float(np.median(np.linalg.norm(hmat, axis=1)))

    def disguised() -> I8:
        v = rng.normal(0.0, 1.0, d)
        return quantize(v * typical_norm / np.linalg.norm(v), shift)

    if attack == "signflip":
        return quantize(-ap.signflip_k * task.local_delta(w, attacker, epoch), shift)
    if attack == "gauss":
        rms = float(np.sqrt(np.mean(hmat**2)))
        return quantize(rng.normal(0.0, ap.gauss_scale * rms, d), shift)
    if attack == "labelflip":
        return quantize(task.local_delta(w, attacker, epoch, flip_labels=True), shift)
    if attack == "alie":
        return quantize(hmat.mean(axis=0) - ap.alie_z * hmat.std(axis=0), shift)
    if attack.startswith("ipm"):
        eps = float(attack[3:])
        return quantize(-eps * hmat.mean(axis=0), shift)
    if attack == "fr_zero":
        return np.zeros(d, dtype=np.int8)
    if attack == "fr_copy":
        honest_earlier = [u for u in earlier if np.any(u)]
        return honest_earlier[int(rng.integers(len(honest_earlier)))].copy()
    if attack == "fr_disguised":
        return disguised()
    if attack in ("fr_delta", "fr_delta_jitter"):
        if prev_global is None:
            return disguised()  # no global step to resend yet
        g = np.asarray(prev_global, dtype=np.float64)
        if attack == "fr_delta_jitter":
            v = rng.normal(0.0, 1.0, d)
            g = g + v * (ap.jitter * np.linalg.norm(g) / np.linalg.norm(v))
        return np.clip(np.round(g), -127, 127).astype(np.int8)
    raise ValueError(f"unknown attack {attack!r}")
