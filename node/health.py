"""What ``/health`` says: whether the node does its job, and if not, what is wrong.

It used to say ``ok`` whatever happened. Now a load balancer or an operator gets ``degraded``
(HTTP 503) with the reasons when the head is stuck while transactions wait, the database cannot
be read, or an L1 service has not completed a round for a while (the L1 unreachable, a key out
of funds), and in any case the figures to judge by: head age, mempool, L1 heads and lag.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Node

L1_SILENT_S = 120.0  # an L1 service with no completed round for this long is a problem


def health(node: Node, now: float | None = None) -> dict[str, Any]:
    """``{status: ok | degraded, problems, head, headAgeSeconds, mempool, queued, l1}`` (``head``
    and ``mempool`` as before: the height and the transactions waiting)."""
    now = time.time() if now is None else now
    seq = node.sequencer
    problems: list[str] = []
    head = seq.head
    age = None if head.height == 0 else round(now - head.header.timestamp_ms / 1000, 3)
    stall = max(30.0, 20 * node.cfg.block_time)
    if len(seq.mempool) and age is not None and age > stall:
        problems.append(f"head stalled: {len(seq.mempool)} transactions wait, no block for {age} s")
    try:
        node.storage.head()
    except Exception as exc:  # any failure to read is the answer
        problems.append(f"database unreadable: {exc}")
    view: dict[str, Any] = {
        "head": head.height,
        "headAgeSeconds": age,
        "mempool": len(seq.mempool),
        "queued": seq.mempool.queued,  # of those, waiting behind a nonce gap
    }
    if node.l1 is not None:
        services = {}
        roles = ["follower", "poster"] + (["aggregator"] if node.l1.aggregator else [])
        for role in roles:
            last = node.metrics.l1_rounds.get(role)
            since = None if last is None else round(now - last, 3)
            error = node.metrics.l1_failure.get(role)
            services[role] = {"lastRoundSecondsAgo": since, "lastError": error}
            silent = since is None and now - node.started > L1_SILENT_S
            if silent or (since is not None and since > L1_SILENT_S):
                problems.append(f"l1 {role}: no completed round for {L1_SILENT_S:.0f} s" + (
                    f" ({error})" if error else ""))  # fmt: skip
        view["l1"] = {
            "safe": seq.safe_height,
            "finalized": seq.finalized_height,
            "unpostedBlocks": head.height - seq.safe_height,
            "services": services,
        }
    return {"status": "degraded" if problems else "ok", "problems": problems, **view}
