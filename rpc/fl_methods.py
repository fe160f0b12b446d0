"""The federated-learning ``mps_*`` methods: tasks, epochs, slashing state, blobs.

Every read takes an optional ``block`` (a height or a tag, default ``latest``) and answers
from that block's state, so a client can ask for the state under a root it trusts (the newest
batch committed on the L1, say) and check every proof against that root.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from stf import state_keys
from stf.block import Block
from stf.errors import Code, MPSError
from stf.fl.records import CLEAN, ClientRecord, EpochSummary, Verdict
from stf.fl.store import open_tasks
from stf.fl.task import TaskState
from stf.ids import ClientKey, TaskId
from stf.state import STATE_PREFIX

from .codec import to_bool, to_hash, to_uint
from .fl_views import (
    client_record_view,
    epoch_view,
    proven_record_fields,
    reference_view,
    state_at,
    task_view,
    verdict_fields,
)
from .jsonrpc import Param
from .lookup import StateGet, not_found, read_blob, resolve_block, state_reader
from .params import AT_BLOCK, HASH, TASK
from .ports import FLStore, Heads
from .registry import rpc
from .views import proof_view

MAX_LIST = 1000


def task_state(get: StateGet, task_id: TaskId) -> TaskState:
    raw = get(state_keys.task(task_id))
    if raw is None:
        raise not_found(f"task {task_id.hex()}")
    return TaskState.decode(raw)


class FLMethods:
    """Tasks, closed epochs, slashing state with proofs, and blobs.

    ``store`` holds blocks, state (the head's index and the tree) and blobs; ``heads`` says
    which block each tag names.
    """

    def __init__(self, store: FLStore, heads: Heads) -> None:
        self._store = store
        self._heads = heads

    def _at(self, tag: int | str) -> tuple[Block, StateGet]:
        block = resolve_block(self._store, self._heads, tag)
        return block, state_reader(self._store, self._heads, block)

    @rpc(TASK, AT_BLOCK)
    async def mps_getTask(self, task_id: TaskId, tag: int | str) -> dict[str, Any]:
        """A task: parameters, status, current epoch, base model, joined clients.

        ``scriptCid``, ``initModelCid``: the ``script`` and initial model blob ids (sha256) as
        raw-codec CIDv1 strings (:mod:`stf.cid`), naming the bytes ``mps_getBlob`` returns.
        """
        _, get = self._at(tag)
        return task_view(task_id, task_state(get, task_id), get)

    @rpc(
        Param("openOnly", to_bool, required=False, default=True),
        Param("limit", to_uint, required=False, default=100),
    )
    async def mps_listTasks(self, open_only: bool, limit: int) -> list[dict[str, Any]]:
        """Tasks at the head: the open ones in creation order, then (``openOnly`` false) the
        others, at most ``limit``."""
        limit = min(limit, MAX_LIST)
        head = self._store.state_value
        ids = open_tasks(state_at(head))
        out = [task_view(t, task_state(head, t), head) for t in ids[:limit]]
        if not open_only:
            for task_id, raw_task in self._other_tasks(ids):
                if len(out) >= limit:
                    break
                out.append(task_view(task_id, TaskState.decode(raw_task), head))
        return out

    def _other_tasks(self, skip: list[TaskId]) -> Iterator[tuple[TaskId, bytes]]:
        """The head's task records in key order, less ``skip``; lazy, so a full list stops
        the LevelDB scan."""
        prefix = STATE_PREFIX + state_keys.task(TaskId(b""))
        for k, v in self._store.iter_prefix(prefix):
            task_id = TaskId(k[len(prefix) :])
            if task_id not in skip:
                yield task_id, v

    @rpc(TASK, Param("epoch", to_uint), AT_BLOCK)
    async def mps_getEpoch(self, task_id: TaskId, epoch: int, tag: int | str) -> dict[str, Any]:
        """A closed epoch: base model, aggregate, and every client's score, rank and flags."""
        _, get = self._at(tag)
        raw = get(state_keys.epoch(task_id, epoch)) if epoch < 2**32 else None
        if raw is None:
            raise not_found(f"closed epoch {epoch} of task {task_id.hex()}")
        summary = EpochSummary.decode(raw)
        records = []
        for c in summary.clients:
            raw_rec = get(state_keys.client_record(task_id, epoch, c))
            assert raw_rec is not None, "an epoch lists a client without its record"
            records.append(client_record_view(c, ClientRecord.decode(raw_rec)))
        return epoch_view(task_id, epoch, summary, records, reference_view(get, task_id, epoch))

    @rpc(TASK, Param("client", to_hash), AT_BLOCK)
    async def mps_getSlashingState(
        self, task_id: TaskId, client: ClientKey, tag: int | str
    ) -> dict[str, Any]:
        """A client's verdict and per-epoch records in a task, each with a Merkle proof.

        ``taskRecord`` proves the task record itself (its ``epoch`` says which epochs have
        closed), so a client can check that no record was left out.
        """
        block, get = self._at(tag)
        t = task_state(get, task_id)
        verdict = proof_view(self._store, block, state_keys.verdict(task_id, client))
        out: dict[str, Any] = {
            "task": task_id,
            "client": client,
            "height": block.height,
            "stateRoot": block.header.state_root,
            "verdict": verdict,
            "taskRecord": proof_view(self._store, block, state_keys.task(task_id)),
            "records": self._proven_records(block, task_id, client, t.epoch),
        }
        v = CLEAN if verdict["value"] is None else Verdict.decode(verdict["value"])
        out.update(verdict_fields(v))
        return out

    def _proven_records(
        self, block: Block, task_id: TaskId, client: ClientKey, epochs: int
    ) -> list[dict[str, Any]]:
        """The client's record in each closed epoch it took part in, with its proof."""
        out = []
        for ep in range(epochs):
            rec = proof_view(self._store, block, state_keys.client_record(task_id, ep, client))
            if rec["value"] is not None:
                rec.update(proven_record_fields(ep, ClientRecord.decode(rec["value"])))
                out.append(rec)
        return out

    @rpc(HASH)
    async def mps_getBlob(self, blob_hash: bytes) -> bytes:
        """A content-addressed blob (model, update, script) by its sha256; msgpack for big ones.

        A blob's raw CIDv1 (``bafkrei...``, e.g. ``scriptCid`` in ``mps_getTask``) carries the
        same sha256: :func:`stf.cid.parse_cid_v1` turns it into the ``hash`` to pass here.
        """
        blob = await read_blob(self._store, blob_hash)
        if blob is None:
            raise blob_absence(self._store, blob_hash)
        return bytes(blob)


def blob_absence(store: FLStore, blob_hash: bytes) -> MPSError:
    """NOT_FOUND for a blob the store does not hold, saying when retention pruned it."""
    at = store.pruned_at(blob_hash)
    if at is None:
        return not_found(f"blob {blob_hash.hex()}")
    return MPSError(
        Code.NOT_FOUND,
        f"blob {blob_hash.hex()} was computed by the chain and pruned by this node's blob "
        f"retention at height {at} (no state names it any more): ask a node that keeps every "
        "blob (blob_retention_blocks = 0)",
    )
