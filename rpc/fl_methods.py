"""The federated-learning ``mps_*`` methods: tasks, epochs, slashing state, blobs."""

from __future__ import annotations

from typing import Any

from stf import encoding, keys
from stf.cid import cid_v1
from stf.errors import Code, MPSError
from stf.fl.rules import flag_names
from stf.fl.task import STATUS_NAMES, TaskState

from .codec import to_hash, to_uint
from .jsonrpc import Dispatcher, Param
from .methods import NodeView, not_found
from .views import proof_view


def register_fl_methods(d: Dispatcher, node: NodeView) -> None:
    storage = node.storage

    def task_state(task_id: bytes) -> TaskState:
        raw = storage.state_value(keys.task(task_id))
        if raw is None:
            raise not_found(f"task {task_id.hex()}")
        return TaskState.decode(raw)

    def proven(key: bytes) -> dict[str, Any]:
        return proof_view(storage, node.sequencer.head, key)

    async def mps_getTask(task_id: bytes) -> dict[str, Any]:
        """A task: parameters, status, current epoch, base model, joined clients.

        ``scriptCid``, ``initModelCid``: the ``script`` and initial model blob ids (sha256) as
        raw-codec CIDv1 strings (:mod:`stf.cid`), naming the bytes ``mps_getBlob`` returns.
        """
        t = task_state(task_id)
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
            "script": p.script,
            "scriptCid": cid_v1(p.script),
            "initModelCid": cid_v1(p.init_model),
            "targetAccuracyPpm": p.target_accuracy_ppm,
            "minClients": p.min_clients,
            "maxClients": p.max_clients,
            "clients": t.clients,
            "submitted": t.submitted,
            "rules": p.rules.to_list(),
        }

    async def mps_getEpoch(task_id: bytes, epoch: int) -> dict[str, Any]:
        """A closed epoch: base model, aggregate, and every client's score, rank and flags."""
        raw = storage.state_value(keys.epoch(task_id, epoch)) if epoch < 2**32 else None
        if raw is None:
            raise not_found(f"closed epoch {epoch} of task {task_id.hex()}")
        n, base, step, next_base, height, clients, acc = encoding.decode(raw)
        records = []
        for c in clients:
            rec = encoding.decode(storage.state_value(keys.client_record(task_id, epoch, c)))
            records.append(
                {
                    "client": c,
                    "update": rec[0],
                    "score": rec[1],
                    "rank": rec[2],
                    "sqNorm": rec[3],
                    "flags": rec[7],
                    "flagNames": flag_names(rec[7]),
                    "selected": bool(rec[8]),
                }
            )
        return {
            "task": task_id,
            "epoch": epoch,
            "clients": n,
            "baseModel": base,
            "aggregateStep": step,
            "nextBaseModel": next_base,
            "closedAt": height,
            "accuracyPpm": None if acc < 0 else acc,
            "records": records,
        }

    async def mps_getSlashingState(task_id: bytes, client: bytes) -> dict[str, Any]:
        """A client's verdict and per-epoch records in a task, each with a Merkle proof."""
        t = task_state(task_id)
        verdict = proven(keys.verdict(task_id, client))
        out: dict[str, Any] = {"task": task_id, "client": client, "verdict": verdict, "records": []}
        if verdict["value"] is not None:
            strikes, slashable, reason, ep = encoding.decode(verdict["value"])
            out.update(
                strikes=strikes,
                slashable=bool(slashable),
                reason=reason,
                reasonNames=flag_names(reason),
                slashEpoch=None if ep < 0 else ep,
            )
        else:
            out.update(strikes=0, slashable=False, reason=0, reasonNames=[], slashEpoch=None)
        for ep in range(t.epoch):
            rec = proven(keys.client_record(task_id, ep, client))
            if rec["value"] is not None:
                v = encoding.decode(rec["value"])
                rec.update(epoch=ep, score=v[1], rank=v[2], flags=v[7], flagNames=flag_names(v[7]))
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

    d.add("mps_getTask", mps_getTask, Param("task", to_hash))
    d.add("mps_getEpoch", mps_getEpoch, Param("task", to_hash), Param("epoch", to_uint))
    d.add(
        "mps_getSlashingState",
        mps_getSlashingState,
        Param("task", to_hash),
        Param("client", to_hash),
    )
    d.add("mps_getBlob", mps_getBlob, Param("hash", to_hash))
