"""The demo's data and model: the digits, their non-IID split over the clients, and the Trainer.

The requester uploads this module as the task's script blob: it is the model and the local
training every honest client runs. sklearn and torch are imported when used, so the rest of
the demo imports without them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from client_sdk.train import layout_of, train_update, unflatten_into
from stf.fl.task import TaskParams

F64 = npt.NDArray[np.float64]

HIDDEN = 32
LOCAL_STEPS = 40
BATCH = 16
LR = 0.3
ALPHA = 0.5  # Dirichlet concentration of the non-IID split
MIN_SAMPLES = 20
TEST_FRAC = 0.25
ROOT_SAMPLES = 100  # of the held-out part: the requester's reference data (FLTrust's root set)


def script_source() -> bytes:
    """This module's source, the task's script blob: what a client needs to train like the
    honest ones (the model, the minibatches, the local steps)."""
    return Path(__file__).read_bytes()


@dataclass
class Data:
    """The split: the clients' training samples (``parts`` indexes them per client), the
    requester's held-out test set and its root set (its reference update's data)."""

    x_train: npt.NDArray[np.float32]
    y_train: npt.NDArray[np.int64]
    x_test: npt.NDArray[np.float32]
    y_test: npt.NDArray[np.int64]
    parts: list[npt.NDArray[np.int64]]  # training indices per client
    x_root: npt.NDArray[np.float32]  # the requester's own training data, for its reference
    y_root: npt.NDArray[np.int64]


def load_data(n_clients: int, seed: int) -> Data:
    """scikit-learn's bundled digits (no download): a stratified held-out part for the
    requester, the rest split over ``n_clients`` non-IID (per class, Dirichlet proportions),
    redrawn until every client has at least ``MIN_SAMPLES``."""
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]
    from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]

    ds = load_digits()
    x = np.asarray(ds.data, dtype=np.float32) / 16.0
    y = np.asarray(ds.target, dtype=np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=TEST_FRAC, random_state=seed, stratify=y
    )
    x_te, x_root, y_te, y_root = train_test_split(
        x_te, y_te, test_size=ROOT_SAMPLES, random_state=seed, stratify=y_te
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
                np.asarray(x_root),
                np.asarray(y_root),
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
        """The seeded initial model, flattened in layout order: the task's ``init_model``."""
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

    def reference_delta(self, base: F64, epoch: int, params: TaskParams) -> F64:
        """The requester's reference update (docs/protocol.md "The requester's reference"): the
        clients' training, from ``base``, on its own root set."""
        rng = np.random.default_rng([self.seed, epoch, 424242])
        loader = self._loader(self.data.x_root, self.data.y_root, rng)
        return train_update(self.module, loader, params, base, epochs=1, lr=LR)

    def accuracy(self, w: F64, params: TaskParams) -> float:
        """Accuracy of the flat weights ``w`` on the held-out set (the requester's report)."""
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
