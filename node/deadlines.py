"""Why an idle chain must still seal blocks: deadlines that count blocks.

Phase windows and funding windows are counted in blocks, and the sequencer seals a block only
when something waits, so on an idle chain a block-counted deadline would never fall due: an
epoch whose last client never sends would stall (issue 11), and an unbound L1 funding would
never lapse, so its funder could never reclaim it (the L1 refunds it only against a state at
a height >= its ``bind_by``). While either is pending, the loop seals a block every
``block_time``, so a window of ``w`` blocks lasts about ``w`` x ``block_time``.
"""

from __future__ import annotations

from collections.abc import Mapping

from stf import state_keys
from stf.fl.settlement import FUNDING_SIZE, decode_funding
from stf.state import STATE_PREFIX

from .storage import Storage

FUNDING_KEYS = STATE_PREFIX + b"funding/"  # state_keys.funding's, as the store holds them


class IdleDeadlines:
    """The latest ``bind_by`` of an unbound funding, kept from the blocks the node commits
    (one scan of the fundings at start: each cost its funder BASE_FEE, so they are few)."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._funding_until = 0
        for key, value in storage.iter_prefix(FUNDING_KEYS):
            self._note(key, value)

    def _note(self, key: bytes, value: bytes | None) -> None:
        if value is None or len(value) != FUNDING_SIZE:
            return
        f = decode_funding(value)
        if not f.bound:
            self._funding_until = max(self._funding_until, f.bind_by)

    def observe(self, writes: Mapping[bytes, bytes | None]) -> None:
        """A committed block's writes."""
        for key, value in writes.items():
            if key.startswith(FUNDING_KEYS):
                self._note(key, value)

    def pending(self, head_height: int) -> bool:
        """Something at ``head_height`` waits for blocks to pass: seal one even if idle."""
        if self._storage.state_value(state_keys.OPEN_TASKS):
            return True  # phase windows
        return head_height < self._funding_until  # a funding still bindable, not yet lapsed
