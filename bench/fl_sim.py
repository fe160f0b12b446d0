"""Federated-learning simulation for ``bench/detection.py``: data, model, local training.

Pure numpy (plus scikit-learn's bundled ``load_digits`` and, when installed, the ``mnist1d``
generator; no download). The simulation side is float64; what crosses to the STF is the
protocol's int8 quantized delta ``q = clip(round(delta * 2**shift), -127, 127)``.

* Data: ``digits`` (``load_digits``, 1,797 x 64, pixels / 16) or ``mnist1d`` (4,000 + 1,000
  signals of length 40, generated offline by the PyPI package); a held-out test set; the
  training set split over the clients by :mod:`splits` (log-normal sizes, Dirichlet labels).
* Model: softmax regression or a one-hidden-layer tanh MLP, one flat float64 vector.
* Local training, as FedAvg does it: ``local_epochs`` passes of minibatch SGD over the
  client's own data (batch ``batch``, learning rate ``lr``), so a client with more data takes
  more steps and sends a larger update; or, with ``local_steps`` > 0, that many minibatches
  drawn with replacement whatever the data size (a training script with a fixed step count). Each client's minibatch order is seeded by
  (seed, epoch, client): an honest client computes the same delta from the same model.
* Quantization shift (fixed per task): ``floor(log2(127 / p999))`` with ``p999`` the 99.9th
  percentile of ``|delta|`` over every client's epoch-0 delta from the initial model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]


@dataclass(frozen=True)
class SimConfig:
    """One simulated federation; every field is a command-line option of the benchmark."""

    dataset: str = "digits"  # or "mnist1d"
    model: str = "mlp"  # or "softmax"
    hidden: int = 32
    n_clients: int = 20
    local_epochs: int = 1
    local_steps: int = 0  # > 0: exactly this many minibatch steps per round, whatever the data
    batch: int = 16
    lr: float = 0.1
    test_frac: float = 0.25  # digits only (mnist1d ships its own test set)
    alpha: float = 0.1  # Dirichlet concentration of the label mixes
    sigma: float = 1.0  # log-normal sigma of the client sizes
    min_size: int = 8
    split: str = "lognormal"  # or "equal", or "file" (split_fn given to make_task)


Data = tuple[F64, npt.NDArray[np.int64], F64, npt.NDArray[np.int64]]


@cache
def _digits() -> tuple[F64, npt.NDArray[np.int64]]:
    from sklearn.datasets import load_digits

    ds = load_digits()
    return np.asarray(ds.data, dtype=np.float64) / 16.0, np.asarray(ds.target, dtype=np.int64)


@cache
def _mnist1d() -> Data:
    """mnist1d's default data set (seeded inside the package: the same on every machine)."""
    from mnist1d.data import get_dataset_args, make_dataset

    ds = make_dataset(get_dataset_args())
    f = np.float64
    return (
        np.asarray(ds["x"], f),
        np.asarray(ds["y"], np.int64),
        np.asarray(ds["x_test"], f),
        np.asarray(ds["y_test"], np.int64),
    )


def have_mnist1d() -> bool:
    """Whether the optional ``mnist1d`` package (the ``bench`` extra) is importable."""
    import importlib.util

    return importlib.util.find_spec("mnist1d") is not None


def load_data(cfg: SimConfig, seed: int) -> Data:
    """Train and test arrays; digits gets a stratified split per seed."""
    if cfg.dataset == "mnist1d":
        return _mnist1d()
    if cfg.dataset != "digits":
        raise ValueError(f"unknown dataset {cfg.dataset!r}")
    from sklearn.model_selection import train_test_split

    x, y = _digits()
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=cfg.test_frac, random_state=seed, stratify=y
    )
    return x_tr, y_tr, x_te, y_te


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
        return np.concatenate([w1.ravel(), np.zeros(self.hidden), w2.ravel(), np.zeros(self.n_out)])

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


ROOT_SIZE = 100  # the requester's root data set of the FLTrust baseline (its paper uses 100)
ROOT_CLIENT = 2**31 - 1  # the requester's training stream (no client has this index)
BACKDOOR_TARGET = 0  # the label a triggered input should get


def trigger_features(dataset: str, n_in: int) -> npt.NDArray[np.int64]:
    """The backdoor's pixel pattern: digits' bottom-right 2x3 pixels; mnist1d's last 4 samples."""
    if dataset == "digits":
        return np.array([53, 54, 55, 61, 62, 63], dtype=np.int64)
    return np.arange(n_in - 4, n_in, dtype=np.int64)


@dataclass
class Task:
    """One federation: data, split, model, initial weights and the fixed quantization shift."""

    cfg: SimConfig
    seed: int
    model: Model
    x_train: F64
    y_train: npt.NDArray[np.int64]
    x_test: F64
    y_test: npt.NDArray[np.int64]
    parts: list[npt.NDArray[np.int64]]
    init: F64
    trigger: npt.NDArray[np.int64]
    trigger_value: float
    shift: int = 0
    p999: float = 0.0  # the calibration figure the shift came from

    def rng(self, epoch: int, client: int, salt: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch, client, salt])

    def poison(self, x: F64) -> F64:
        """Stamps the backdoor trigger on a copy of ``x``."""
        out = x.copy()
        out[:, self.trigger] = self.trigger_value
        return out

    def local_delta(
        self,
        w: F64,
        client: int,
        epoch: int,
        *,
        flip_labels: bool = False,
        backdoor: float = 0.0,
    ) -> F64:
        """FedAvg's local training: ``local_epochs`` passes of minibatch SGD; local - w.

        ``backdoor`` > 0 stamps the trigger on that fraction of the client's samples and
        relabels them to :data:`BACKDOOR_TARGET` (Bagdasaryan et al.'s data poisoning).
        """
        idx = self.parts[client]
        x, y = self.x_train[idx], self.y_train[idx]
        n_classes = self.model.n_out
        if flip_labels:
            y = n_classes - 1 - y
        rng = self.rng(epoch, client)
        if backdoor > 0.0:
            k = max(1, round(backdoor * len(idx)))
            sel = rng.choice(len(idx), size=k, replace=False)
            x = x.copy()
            y = y.copy()
            x[sel] = self.poison(x[sel])
            y[sel] = BACKDOOR_TARGET
        return self._sgd(w, x, y, rng)

    def _sgd(self, w: F64, x: F64, y: npt.NDArray[np.int64], rng: np.random.Generator) -> F64:
        cfg = self.cfg
        local = w.copy()
        m = len(y)
        if cfg.local_steps > 0:  # a fixed step count: update norms no longer grow with the data
            for _ in range(cfg.local_steps):
                b = rng.integers(0, m, size=min(cfg.batch, m))
                local -= cfg.lr * self.model.grad(local, x[b], y[b])
            return local - w
        for _ in range(cfg.local_epochs):
            order = rng.permutation(m)
            for pos in range(0, m, cfg.batch):
                b = order[pos : pos + cfg.batch]
                local -= cfg.lr * self.model.grad(local, x[b], y[b])
        return local - w

    def root_delta(self, w: F64, epoch: int) -> F64:
        """The requester's own update (FLTrust's root data set, Cao et al. NDSS 2021):
        :data:`ROOT_SIZE` training samples drawn uniformly, trained on as a client would."""
        pick = np.random.default_rng([self.seed, 424242]).choice(
            len(self.y_train), size=min(ROOT_SIZE, len(self.y_train)), replace=False
        )
        return self._sgd(w, self.x_train[pick], self.y_train[pick], self.rng(epoch, ROOT_CLIENT))

    def accuracy(self, w: F64) -> float:
        return self.model.accuracy(w, self.x_test, self.y_test)

    def backdoor_success(self, w: F64) -> float:
        """Attack success rate: triggered test inputs of other labels classified as the target."""
        keep = self.y_test != BACKDOOR_TARGET
        x = self.poison(self.x_test[keep])
        pred = np.argmax(self.model.logits(w, x), axis=1)
        return float(np.mean(pred == BACKDOOR_TARGET))


SplitFn = Callable[[npt.NDArray[np.int64], int, np.random.Generator], list[npt.NDArray[np.int64]]]


def make_task(cfg: SimConfig, seed: int, split_fn: SplitFn | None = None) -> Task:
    """Data, split (``split_fn`` overrides ``cfg.split``), model and the calibrated shift."""
    from splits import equal_iid, lognormal_dirichlet

    x_tr, y_tr, x_te, y_te = load_data(cfg, seed)
    rng = np.random.default_rng([seed, 12345])
    if split_fn is not None:
        parts = split_fn(y_tr, cfg.n_clients, rng)
    elif cfg.split == "equal":
        parts = equal_iid(y_tr, cfg.n_clients, rng)
    elif cfg.split == "lognormal":
        parts = lognormal_dirichlet(y_tr, cfg.n_clients, cfg.alpha, cfg.sigma, rng, cfg.min_size)
    else:
        raise ValueError(f"unknown split {cfg.split!r}")
    model = Model(cfg.model, x_tr.shape[1], 10, cfg.hidden)
    init = model.init(rng)
    trig = trigger_features(cfg.dataset, x_tr.shape[1])
    task = Task(cfg, seed, model, x_tr, y_tr, x_te, y_te, parts, init, trig, float(x_tr.max()))
    deltas = np.stack([task.local_delta(init, c, 0) for c in range(cfg.n_clients)])
    task.p999 = float(np.quantile(np.abs(deltas), 0.999))
    task.shift = math.floor(math.log2(127.0 / task.p999))
    return task
