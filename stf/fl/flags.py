"""The flags an epoch close can raise against an update, and what each one costs.

Every flag excludes the update from the epoch's aggregate and from the epoch's reward, and is a
**strike** (strikes do not decay). A client with ``strikes_to_bar`` strikes is **barred** from
the task: it submits nothing more there and forfeits its share of the task's pool, and its stake
is untouched. Statistics and exact coincidences are evidence, not proof:
heterogeneous honest clients are Krum outliers, a small converged client's int8 update can
repeat itself exactly, or be all zeros. Updates are committed before any is revealed
(:mod:`stf.fl.commit`), so a copy can only come from collusion or a leak, and identical reveals
are all flagged: no order in a block makes one of them the original.

Only a **provable** offence makes a verdict slashable (its stake on the L1): today one, an update
that is exactly the previous global step when that step has at least ``MIN_PROVABLE_SUPPORT``
nonzero coordinates and the update is not the client's own last one repeated
(:mod:`stf.fl.checks`). The argument is in docs/protocol.md.

The bit values are consensus: they are in the client records and the slash evidence.
"""

from __future__ import annotations

from enum import IntFlag


class Flag(IntFlag):
    NONE = 0
    ZERO = 1  # exact: all coordinates zero
    COPY = 2  # exact: equals an update submitted earlier this epoch
    REPLAY_OWN = 4  # exact: equals the client's own previous update
    REPLAY_GLOBAL = 8  # exact and provable: equals a previous global step of enough support
    KRUM_OUTLIER = 16  # statistical
    NEAR_ZERO = 32  # statistical
    NEAR_COPY = 64  # statistical
    GLOBAL_ECHO = 128  # statistical: nearly parallel to the previous global step
    UNCORRELATED = 256  # statistical: uncorrelated with the selection and with its own past
    REVEAL_MISSING = 512  # protocol: committed, and did not reveal in the reveal phase


EXACT = Flag.ZERO | Flag.COPY | Flag.REPLAY_OWN | Flag.REPLAY_GLOBAL
PROVABLE = Flag.REPLAY_GLOBAL  # the offences that slash (stf.fl.judge.next_verdict)
STATISTICAL = (
    Flag.KRUM_OUTLIER | Flag.NEAR_ZERO | Flag.NEAR_COPY | Flag.GLOBAL_ECHO | Flag.UNCORRELATED
)
# a commitment not revealed is a strike: else a cartel could commit many updates and reveal
# only those that suit it once it sees the others' reveals. Not an offence: a client can crash.
PROTOCOL = Flag.REVEAL_MISSING


def flag_names(flags: int) -> list[str]:
    return [f.name for f in Flag if f and flags & f and f.name is not None]
