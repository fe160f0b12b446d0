"""The flags an epoch close can raise against an update, and their two strengths.

* **certain** offences need no statistics and slash at once: an exactly zero
  update, an exact copy of an update submitted earlier in the epoch, or an exact
  replay of the client's own previous update or of the last global step;
* **statistical** flags are evidence: a Krum outlier (outside the Multi-Krum
  selection and with a score above ``krum_ratio`` x the median), a near-zero
  update, a near copy, an update nearly parallel to the last global step (a
  "delta" free rider), an update uncorrelated both with the Multi-Krum selection
  and with its own last update (a disguised free rider sending noise). A client
  becomes slashable for them only after ``strikes_to_slash`` flagged epochs
  (:func:`stf.fl.judge.next_verdict`).

The bit values are consensus: they are in the client records and the slash evidence.
"""

from __future__ import annotations

from enum import IntFlag


class Flag(IntFlag):
    NONE = 0
    ZERO = 1  # certain: all coordinates zero
    COPY = 2  # certain: equals an update submitted earlier this epoch
    REPLAY_OWN = 4  # certain: equals the client's own previous update
    REPLAY_GLOBAL = 8  # certain: equals the previous global step
    KRUM_OUTLIER = 16  # statistical
    NEAR_ZERO = 32  # statistical
    NEAR_COPY = 64  # statistical
    GLOBAL_ECHO = 128  # statistical: nearly parallel to the previous global step
    UNCORRELATED = 256  # statistical: uncorrelated with the selection and with its own past


CERTAIN = Flag.ZERO | Flag.COPY | Flag.REPLAY_OWN | Flag.REPLAY_GLOBAL
STATISTICAL = (
    Flag.KRUM_OUTLIER | Flag.NEAR_ZERO | Flag.NEAR_COPY | Flag.GLOBAL_ECHO | Flag.UNCORRELATED
)


def flag_names(flags: int) -> list[str]:
    return [f.name for f in Flag if f and flags & f and f.name is not None]
