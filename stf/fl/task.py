"""A federated-learning task: its parameters, its record in state, and quantization.

Quantization (fixed per task): a model delta ``x`` is sent as the integer
``q = clip(round_half_even(x * 2**shift), -M, M)`` with ``M = 127`` (int8) or
``32767`` (int16), little-endian, one value per parameter in layout order. The
base model is int32 in the same units (``w = W * 2**-shift``); the next base is
``clip(W + aggregate, int32)``. All integers: no float ever enters the STF.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import IntEnum
from math import prod
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import encoding
from ..encoding import EncodingError
from ..ids import NO_BLOB, BlobId, ClientKey
from .rules import EpochRules

DTYPES: dict[str, np.dtype[Any]] = {"int8": np.dtype("<i1"), "int16": np.dtype("<i2")}
MODEL_DTYPE = np.dtype("<i4")
MAX_PARAMS = 10**8


class TaskStatus(IntEnum):
    """A task's lifecycle; the values are consensus (they are in the task record)."""

    OPEN = 0  # epochs run
    COMPLETE = 1  # the target accuracy was reported: stopped early, settled
    FINISHED = 2  # every epoch closed: settled

    @property
    def label(self) -> str:
        """The name the RPC answers with (``"open"``...)."""
        return self.name.lower()


OPEN, COMPLETE, FINISHED = TaskStatus.OPEN, TaskStatus.COMPLETE, TaskStatus.FINISHED


@dataclass(frozen=True)
class TaskParams:
    name: str
    layout: tuple[tuple[str, tuple[int, ...]], ...]
    dtype: str
    shift: int
    init_model: BlobId  # id of the int32 initial model: its blob, or a chunk manifest
    script: BlobId  # blob hash of the training script
    epochs: int
    target_accuracy_ppm: int
    min_clients: int
    max_clients: int
    window_blocks: int
    evaluator: ClientKey  # who may report accuracy besides the requester (zero: nobody else)
    rules: EpochRules
    # the L1 account whose funding of this task id pays for it (stf.fl.funding); b"": none
    funder: bytes = b""

    @property
    def d(self) -> int:
        return sum(prod(shape) for _, shape in self.layout)

    @property
    def np_dtype(self) -> np.dtype[Any]:
        return DTYPES[self.dtype]

    def to_list(self) -> list[Any]:
        return [
            self.name,
            [[n, list(s)] for n, s in self.layout],
            self.dtype,
            self.shift,
            self.init_model,
            self.script,
            self.epochs,
            self.target_accuracy_ppm,
            self.min_clients,
            self.max_clients,
            self.window_blocks,
            self.evaluator,
            self.rules.to_list(),
            self.funder,
        ]

    @classmethod
    def from_list(cls, v: Any) -> TaskParams:
        """Parse and validate; raise :class:`EncodingError` or ValueError naming the field."""
        v = encoding.expect_list(v, 14, "task parameters")
        layout_raw = v[1]
        if not isinstance(layout_raw, list) or not layout_raw or len(layout_raw) > 256:
            raise EncodingError("layout must list 1-256 named tensors")
        layout = []
        for item in layout_raw:
            name, shape = encoding.expect_list(item, 2, "layout entry")
            encoding.expect_str(name, "tensor name", 64)
            if not isinstance(shape, list) or not 1 <= len(shape) <= 8:
                raise EncodingError(f"tensor {name!r}: shape must have 1-8 dimensions")
            dims = tuple(
                encoding.expect_int(x, f"dimension of {name!r}", 1, MAX_PARAMS) for x in shape
            )
            layout.append((name, dims))
        rules_raw = encoding.expect_list(v[12], 10, "rules")
        try:
            rules = EpochRules.from_list(rules_raw)
        except (TypeError, ValueError, IndexError) as exc:
            raise EncodingError(f"rules: {exc}") from None
        p = cls(
            name=encoding.expect_str(v[0], "name", 128),
            layout=tuple(layout),
            dtype=encoding.expect_str(v[2], "dtype", 8),
            shift=encoding.expect_int(v[3], "shift", 0, 24),
            init_model=BlobId(encoding.expect_bytes(v[4], "init_model", 32)),
            script=BlobId(encoding.expect_bytes(v[5], "script", 32)),
            epochs=encoding.expect_int(v[6], "epochs", 1, 10_000),
            target_accuracy_ppm=encoding.expect_int(v[7], "target_accuracy_ppm", 0, 1_000_000),
            min_clients=encoding.expect_int(v[8], "min_clients", 1, 100_000),
            max_clients=encoding.expect_int(v[9], "max_clients", 1, 100_000),
            window_blocks=encoding.expect_int(v[10], "window_blocks", 1, 10**6),
            evaluator=ClientKey(encoding.expect_bytes(v[11], "evaluator", 32)),
            rules=rules,
            funder=encoding.expect_bytes(v[13], "funder"),
        )
        p.validate()
        return p

    def validate(self) -> None:
        if self.dtype not in DTYPES:
            raise EncodingError("dtype must be int8 or int16")
        if self.d > MAX_PARAMS:
            raise EncodingError(f"model has {self.d} parameters, limit is {MAX_PARAMS}")
        if len({n for n, _ in self.layout}) != len(self.layout):
            raise EncodingError("tensor names must be unique")
        if len(self.funder) not in (0, 20):
            raise EncodingError("funder must be a 20-byte L1 address, or empty for none")
        if self.min_clients > self.max_clients:
            raise EncodingError("min_clients exceeds max_clients")
        try:
            self.rules.validate(self.max_clients)
        except ValueError as exc:
            raise EncodingError(f"rules: {exc}") from None
        if self.min_clients <= 2 * self.rules.f + 2:
            raise EncodingError(
                f"min_clients must exceed 2f + 2 = {2 * self.rules.f + 2} for Krum with f = "
                f"{self.rules.f}"
            )


@dataclass
class TaskState:
    """The mutable record of a task in state (``task/<id>``)."""

    params: TaskParams
    requester: ClientKey
    status: TaskStatus = TaskStatus.OPEN
    epoch: int = 0
    # ids below name one blob holding the array, or a chunk manifest (stf.fl.chunks)
    base: BlobId = NO_BLOB  # id of the current int32 base model
    prev_global: BlobId = NO_BLOB  # id of the last aggregate (quantized dtype), b"" at epoch 0
    epoch_start: int = 0  # height where the current epoch's window opened
    clients: list[ClientKey] = field(default_factory=list)  # joined, in join order
    # this epoch's commit-reveal (stf.fl.commit): the clients that committed, in commit order,
    # their update ids once revealed (NO_BLOB until then) and their commitments, same order
    submitted: list[ClientKey] = field(default_factory=list)
    pending: list[BlobId] = field(default_factory=list)
    commitments: list[bytes] = field(default_factory=list)
    reveal_start: int = 0  # height where the reveal phase opened; 0 in the commit phase

    @property
    def revealing(self) -> bool:
        """In the reveal phase: no more commitments, reveals are taken."""
        return self.reveal_start > 0

    @property
    def revealed(self) -> list[int]:
        """Positions (in commit order) of the clients that have revealed."""
        return [i for i, u in enumerate(self.pending) if u != NO_BLOB]

    def encode(self) -> bytes:
        return encoding.encode(
            [
                self.params.to_list(),
                self.requester,
                int(self.status),
                self.epoch,
                self.base,
                self.prev_global,
                self.epoch_start,
                self.clients,
                self.submitted,
                self.pending,
                self.commitments,
                self.reveal_start,
            ]
        )

    @classmethod
    def decode(cls, raw: bytes) -> TaskState:
        v = encoding.expect_list(encoding.decode(raw), 12, "task record")
        status = TaskStatus(v[2])
        return cls(TaskParams.from_list(v[0]), v[1], status, *v[3:])

    def copy(self) -> TaskState:
        return replace(
            self,
            clients=list(self.clients),
            submitted=list(self.submitted),
            pending=list(self.pending),
            commitments=list(self.commitments),
        )


def quantize(delta: npt.ArrayLike, shift: int, dtype: str = "int8") -> npt.NDArray[Any]:
    """Client side: float delta -> the integer update the STF expects (round half to even)."""
    dt = DTYPES[dtype]
    lim = np.iinfo(dt).max
    q = np.rint(np.asarray(delta, dtype=np.float64) * float(2**shift))
    out: npt.NDArray[Any] = np.clip(q, -lim, lim).astype(dt)
    return out


def dequantize(q: npt.ArrayLike, shift: int) -> npt.NDArray[np.float64]:
    return np.asarray(q, dtype=np.float64) / float(2**shift)
