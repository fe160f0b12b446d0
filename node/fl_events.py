"""The federated-learning events of a sealed block, as the node logs and counts them.

The log said "block sealed" and nothing of what happened in it (issue 14): an operator could not
see a task being created, a client joining or an epoch closing without querying the RPC. These
come from the block and its receipts alone (successful transactions only), so they cost no state
read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from stf import encoding
from stf.block import Block, Receipt
from stf.ids import TaskId
from stf.txtypes.fl import CreateTask, JoinTask, ReportEvaluation


def fl_events(
    block: Block, receipts: Sequence[Receipt], closed_epochs: Sequence[TaskId]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(event, fields)`` for each task created, client joined, evaluation reported and epoch
    closed in ``block``."""
    for tx, rc in zip(block.txs, receipts, strict=True):
        if rc.status != 1:
            continue
        if tx.tx_type == CreateTask.TYPE_ID:
            yield "task created", {"task": tx.hash.hex(), "requester": tx.sender.hex()}
        elif tx.tx_type == JoinTask.TYPE_ID:
            (task,) = encoding.decode(tx.payload)
            yield "client joined", {"task": bytes(task).hex(), "client": tx.sender.hex()}
        elif tx.tx_type == ReportEvaluation.TYPE_ID:
            task, epoch, ppm = encoding.decode(tx.payload)
            yield "evaluation reported", {"task": bytes(task).hex(), "epoch": epoch, "ppm": ppm}
    for task_id in closed_epochs:
        yield "epoch closed", {"task": task_id.hex()}
