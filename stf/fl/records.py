"""The federated-learning records of the state tree: one frozen dataclass per format.

Each record is a canonical-msgpack positional list (:mod:`stf.encoding`); its field order is
the format, so it is written down exactly once, here, and every reader (the STF, the RPC, the
SDK's light client, the benchmarks, the tests) goes through ``decode``. A new field is one edit
here and a consensus change (docs/protocol.md), never a silent shift of indices elsewhere.
The key of each record is in :mod:`stf.state_keys`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import encoding
from ..ids import BlobId, ClientKey

NO_ACCURACY = -1  # an epoch summary's accuracy before anyone reported it
NO_EPOCH = -1  # a verdict's epoch while it is not slashable


@dataclass(frozen=True)
class ClientRecord:
    """``rec/<task><epoch><client>``: what the epoch close computed for one client's update.

    The slashing evidence: a client proves its own record against a committed root.
    """

    update: BlobId
    score: int  # Krum score: sum of squared distances to the n - f - 2 nearest
    rank: int  # 0 = best Krum score
    sq_norm: int
    loo_dot: int  # <u_i, sum of the Multi-Krum selection without i>
    loo_rest_sq: int  # |that sum|^2
    global_dot: int  # <u_i, previous global step>, 0 without one
    flags: int  # stf.fl.flags.Flag bits
    selected: bool  # used by the aggregate
    credit: int  # reward credits the epoch gave it (stf.fl.contribution)

    def encode(self) -> bytes:
        return encoding.encode(
            [
                self.update,
                self.score,
                self.rank,
                self.sq_norm,
                self.loo_dot,
                self.loo_rest_sq,
                self.global_dot,
                self.flags,
                self.selected,
                self.credit,
            ]
        )

    @classmethod
    def decode(cls, raw: bytes) -> ClientRecord:
        v = encoding.expect_list(encoding.decode(raw), 10, "client record")
        return cls(BlobId(v[0]), v[1], v[2], v[3], v[4], v[5], v[6], v[7], bool(v[8]), v[9])


@dataclass(frozen=True)
class EpochSummary:
    """``epoch/<task><epoch>``: a closed epoch, written by the close, completed by a report."""

    n_clients: int
    base: BlobId  # the base model the epoch trained from
    step: BlobId  # the aggregate step (quantized dtype)
    next_base: BlobId  # the base model of the next epoch
    closed_at: int  # height of the block that closed it
    clients: tuple[ClientKey, ...]  # in submission order
    accuracy_ppm: int = NO_ACCURACY  # reported by the requester or its evaluator

    @property
    def reported(self) -> bool:
        return self.accuracy_ppm != NO_ACCURACY

    def with_accuracy(self, accuracy_ppm: int) -> EpochSummary:
        return replace(self, accuracy_ppm=accuracy_ppm)

    def encode(self) -> bytes:
        return encoding.encode(
            [
                self.n_clients,
                self.base,
                self.step,
                self.next_base,
                self.closed_at,
                list(self.clients),
                self.accuracy_ppm,
            ]
        )

    @classmethod
    def decode(cls, raw: bytes) -> EpochSummary:
        v = encoding.expect_list(encoding.decode(raw), 7, "epoch summary")
        clients = tuple(ClientKey(c) for c in v[5])
        return cls(v[0], BlobId(v[1]), BlobId(v[2]), BlobId(v[3]), v[4], clients, v[6])


@dataclass(frozen=True)
class ReferenceRecord:
    """``ref/<task><epoch>``: the requester's reference update (:mod:`stf.fl.reference`),
    committed in the commit phase and revealed in the reveal phase; the epoch close used it
    if ``reference`` is set."""

    commitment: bytes
    reference: BlobId  # NO_BLOB until revealed

    def encode(self) -> bytes:
        return encoding.encode([self.commitment, self.reference])

    @classmethod
    def decode(cls, raw: bytes) -> ReferenceRecord:
        v = encoding.expect_list(encoding.decode(raw), 2, "reference record")
        return cls(v[0], BlobId(v[1]))


@dataclass(frozen=True)
class Verdict:
    """``verdict/<task><client>``: a client's standing in a task; barred and slashable are final.

    ``barred``: too many strikes, excluded from the task (no more updates, no more reward), the
    stake untouched. ``slashable``: a provable offence, the stake can be slashed on the L1.
    ``reason`` and ``epoch`` say which flags and which epoch decided the first of the two.
    """

    strikes: int  # flagged epochs so far
    slashable: bool
    reason: int  # the flags that barred it or made it slashable (0 while standing)
    epoch: int  # the epoch that barred it or made it slashable (NO_EPOCH while standing)
    barred: bool = False

    @property
    def standing(self) -> bool:
        """May still submit in the task (neither barred nor slashable)."""
        return not (self.barred or self.slashable)

    def encode(self) -> bytes:
        return encoding.encode([self.strikes, self.slashable, self.reason, self.epoch, self.barred])

    @classmethod
    def decode(cls, raw: bytes) -> Verdict:
        v = encoding.expect_list(encoding.decode(raw), 5, "verdict")
        return cls(v[0], bool(v[1]), v[2], v[3], bool(v[4]))


CLEAN = Verdict(0, False, 0, NO_EPOCH)  # the verdict of a client with no record
