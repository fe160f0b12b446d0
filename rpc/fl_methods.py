"""The federated-learning ``mps_*`` methods: tasks, epochs, slashing state, blobs.

Every read takes an optional ``block`` (a height or a tag, default ``latest``) and answers
from that block's state, so a client can ask for the state under a root it trusts (the newest
batch committed on the L1, say) and check every proof against that root.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stf import encoding, state_keys
from stf.block import Block
from stf.cid import cid_v1
from stf.errors import Code, MPSError
from stf.fl.epoch import awaited
from stf.fl.records import CLEAN, NO_EPOCH, ClientRecord, EpochSummary, Verdict
from stf.fl.rules import flag_names
from stf.fl.task import STATUS_NAMES, TaskState
from stf.ids import ClientKey, TaskId
from stf.smt import SparseMerkleTree
from stf.state import STATE_PREFIX, State

from .codec import to_block_tag, to_bool, to_hash, to_uint
from .jsonrpc import Dispatcher, Param
from .methods import NodeView, not_found, resolve_block
from .views import proof_view

MAX_LIST = 1000
StateGet = Callable[[bytes], bytes | None]


class _ValuesAt:
    """The STF's key-value reader over one block's state values, so that the STF's own rules
    (not a copy of them) answer questions about that block."""

    def __init__(self, get: StateGet) -> None:
        self._get = get

    def get(self, key: bytes) -> bytes | None:
        return self._get(key[len(STATE_PREFIX) :]) if key.startswith(STATE_PREFIX) else None


def awaiting(get: StateGet, task_id: TaskId, t: TaskState) -> list[bytes]:
    """The clients the current epoch still waits for (it closes early once there are none)."""
    return list(awaited(State(_ValuesAt(get), b""), task_id, t))


def task_view(task_id: TaskId, t: TaskState, get: StateGet) -> dict[str, Any]:
    p = t.params
    return {
        "id": task_id,
        "name": p.name,
        "requester": t.requester,
        "status": STATUS_NAMES[t.status],
        "epoch": t.epoch,
        "epochs": p.epochs,
        "baseModel": t.base,
        "previousStep": t.prev_global or None,
        "epochStart": t.epoch_start,
        "windowBlocks": p.window_blocks,
        "layout": [[n, list(s)] for n, s in p.layout],
        "parameters": p.d,
        "dtype": p.dtype,
        "shift": p.shift,
        "initModel": p.init_model,
        "script": p.script,
        "scriptCid": cid_v1(p.script),
        "initModelCid": cid_v1(p.init_model),
        "targetAccuracyPpm": p.target_accuracy_ppm,
        "minClients": p.min_clients,
        "maxClients": p.max_clients,
        "evaluator": p.evaluator,
        "clients": t.clients,
        "submitted": t.submitted,
        "awaiting": awaiting(get, task_id, t),
        "rules": p.rules.to_list(),
    }


def register_fl_methods(d: Dispatcher, node: NodeView) -> None:
    storage = node.storage
    seq = node.sequencer

    def resolve(tag: int | str) -> Block:
        return resolve_block(storage, seq, tag)

    def reader(block: Block) -> Callable[[bytes], bytes | None]:
        """State reads at ``block``: the flat index at the head, the tree under older roots."""
        if block.hash == seq.head.hash:
            return storage.state_value  # type: ignore[no-any-return]
        tree = SparseMerkleTree(storage)
        root = block.header.state_root

        def get(key: bytes) -> bytes | None:
            vh = tree.get_value_hash(root, key)
            return None if vh is None else storage.value_by_hash(vh)

        return get

    def task_state(get: StateGet, task_id: TaskId) -> TaskState:
        raw = get(state_keys.task(task_id))
        if raw is None:
            raise not_found(f"task {task_id.hex()}")
        return TaskState.decode(raw)

    async def mps_getTask(task_id: TaskId, tag: int | str) -> dict[str, Any]:
        """A task: parameters, status, current epoch, base model, joined clients.

        ``scriptCid``, ``initModelCid``: the ``script`` and initial model blob ids (sha256) as
        raw-codec CIDv1 strings (:mod:`stf.cid`), naming the bytes ``mps_getBlob`` returns.
        """
        get = reader(resolve(tag))
        return task_view(task_id, task_state(get, task_id), get)

    async def mps_listTasks(open_only: bool, limit: int) -> list[dict[str, Any]]:
        """Tasks at the head: the open ones in creation order, then (``openOnly`` false) the
        others, at most ``limit``."""
        limit = min(limit, MAX_LIST)
        raw = storage.state_value(state_keys.OPEN_TASKS)
        ids: list[TaskId] = [] if raw is None else list(encoding.decode(raw))
        head = storage.state_value
        out = [task_view(t, task_state(head, t), head) for t in ids[:limit]]
        if not open_only:
            prefix = STATE_PREFIX + state_keys.task(TaskId(b""))
            for k, v in storage.iter_prefix(prefix):
                if len(out) >= limit:
                    break
                task_id = TaskId(k[len(prefix) :])
                if task_id not in ids:
                    out.append(task_view(task_id, TaskState.decode(v), head))
        return out

    async def mps_getEpoch(task_id: TaskId, epoch: int, tag: int | str) -> dict[str, Any]:
        """A closed epoch: base model, aggregate, and every client's score, rank and flags."""
        get = reader(resolve(tag))
        raw = get(state_keys.epoch(task_id, epoch)) if epoch < 2**32 else None
        if raw is None:
            raise not_found(f"closed epoch {epoch} of task {task_id.hex()}")
        summary = EpochSummary.decode(raw)
        records = []
        for c in summary.clients:
            raw_rec = get(state_keys.client_record(task_id, epoch, c))
            assert raw_rec is not None, "an epoch lists a client without its record"
            rec = ClientRecord.decode(raw_rec)
            records.append(
                {
                    "client": c,
                    "update": rec.update,
                    "score": rec.score,
                    "rank": rec.rank,
                    "sqNorm": rec.sq_norm,
                    "flags": rec.flags,
                    "flagNames": flag_names(rec.flags),
                    "selected": rec.selected,
                }
            )
        return {
            "task": task_id,
            "epoch": epoch,
            "clients": summary.n_clients,
            "baseModel": summary.base,
            "aggregateStep": summary.step,
            "nextBaseModel": summary.next_base,
            "closedAt": summary.closed_at,
            "accuracyPpm": summary.accuracy_ppm if summary.reported else None,
            "records": records,
        }

    async def mps_getSlashingState(
        task_id: TaskId, client: ClientKey, tag: int | str
    ) -> dict[str, Any]:
        """A client's verdict and per-epoch records in a task, each with a Merkle proof.

        ``taskRecord`` proves the task record itself (its ``epoch`` says which epochs have
        closed), so a client can check that no record was left out.
        """
        block = resolve(tag)
        t = task_state(reader(block), task_id)

        def proven(key: bytes) -> dict[str, Any]:
            return proof_view(storage, block, key)

        verdict = proven(state_keys.verdict(task_id, client))
        out: dict[str, Any] = {
            "task": task_id,
            "client": client,
            "height": block.height,
            "stateRoot": block.header.state_root,
            "verdict": verdict,
            "taskRecord": proven(state_keys.task(task_id)),
            "records": [],
        }
        v = CLEAN if verdict["value"] is None else Verdict.decode(verdict["value"])
        out.update(
            strikes=v.strikes,
            slashable=v.slashable,
            reason=v.reason,
            reasonNames=flag_names(v.reason),
            slashEpoch=None if v.epoch == NO_EPOCH else v.epoch,
        )
        for ep in range(t.epoch):
            rec = proven(state_keys.client_record(task_id, ep, client))
            if rec["value"] is not None:
                r = ClientRecord.decode(rec["value"])
                rec.update(
                    epoch=ep,
                    score=r.score,
                    rank=r.rank,
                    flags=r.flags,
                    flagNames=flag_names(r.flags),
                )
                out["records"].append(rec)
        return out

    async def mps_getBlob(blob_hash: bytes) -> bytes:
        """A content-addressed blob (model, update, script) by its sha256; msgpack for big ones.

        A blob's raw CIDv1 (``bafkrei...``, e.g. ``scriptCid`` in ``mps_getTask``) carries the
        same sha256: :func:`stf.cid.parse_cid_v1` turns it into the ``hash`` to pass here.
        """
        blob = storage.blob(blob_hash)
        if blob is None:
            raise MPSError(Code.NOT_FOUND, f"blob {blob_hash.hex()} not found")
        return bytes(blob)

    latest = Param("block", to_block_tag, required=False, default="latest")
    d.add("mps_getTask", mps_getTask, Param("task", to_hash), latest)
    d.add(
        "mps_listTasks",
        mps_listTasks,
        Param("openOnly", to_bool, required=False, default=True),
        Param("limit", to_uint, required=False, default=100),
    )
    d.add("mps_getEpoch", mps_getEpoch, Param("task", to_hash), Param("epoch", to_uint), latest)
    d.add(
        "mps_getSlashingState",
        mps_getSlashingState,
        Param("task", to_hash),
        Param("client", to_hash),
        latest,
    )
    d.add("mps_getBlob", mps_getBlob, Param("hash", to_hash))
