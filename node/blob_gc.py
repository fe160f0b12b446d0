"""Blob retention: drop from the blob store what no state names any more, once it is old enough.

Every blob is stored twice: in the block that carried it (the history, which every verifier
replays and the DA challenge publishes) and in the blob store, where the STF and readers find it
by hash. The blob store only grows: 250 blobs of 4 MiB stayed for good, and so do every epoch's
updates, steps and base models. A sweep (every :data:`SWEEP_EVERY` blocks, on the sequencer,
between blocks) deletes a blob's bytes when

* it was written at or below the **horizon**: ``head - blob_retention_blocks``, and no later than
  the L1-finalized height where the node follows an L1 (a batch still open to a challenge keeps
  everything its blocks wrote), and
* no state **names** it: of every task, its base model (a finished task's final model), initial
  model and script; of an open task also the last step, the epoch's pending updates, each joined
  client's last update and the epoch's reference; the chunks of every such manifest.

Nothing is lost that the chain can still need. A blob a transaction carried (``put_blob``, an
inline update) comes back from its block when anything reads it (:mod:`node.blob_source`), so a
``create_task`` or a chunk list may still name an old upload and the STF reads the same bytes.
A blob the STF computed (a base, a step, a manifest) has no carrier, but no transaction can name
one (``create_task`` takes uploaded blobs only, chunk lists uploaded chunks) and the STF reads it
only through its task's state, which the live set covers: once dropped it is gone, and the RPC
says so (the epoch's records keep its id).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from stf import encoding, state_keys
from stf.encoding import EncodingError
from stf.fl.chunks import Manifest
from stf.fl.records import ReferenceRecord
from stf.fl.task import MODEL_DTYPE, TaskState, TaskStatus
from stf.ids import NO_BLOB
from stf.state import STATE_PREFIX

from .blob_source import carried_bytes
from .storage import P_BLOB_WRITTEN, Storage

#: blocks between sweeps
SWEEP_EVERY = 64
#: ``bw:`` entries one sweep looks at, at most (the rest wait for the next)
SWEEP_BATCH = 10_000
_HEIGHT = struct.Struct(">Q")


@dataclass
class SweepResult:
    pruned: int = 0
    bytes: int = 0
    kept_live: int = 0
    restorable: int = 0  # pruned blobs a read brings back from their block


def _ids_of_task(storage: Storage, task_id: bytes, task: TaskState) -> Iterator[tuple[bytes, int]]:
    """``(blob id, the array's byte size or 0 for "not an array")`` the task's state names."""
    p = task.params
    model = p.d * MODEL_DTYPE.itemsize
    update = p.d * p.np_dtype.itemsize
    yield task.base, model
    yield p.init_model, model
    yield p.script, 0
    if task.status != TaskStatus.OPEN:
        return
    yield task.prev_global, update
    for u in task.pending:
        yield u, update
    for c in task.clients:
        last = storage.state_value(state_keys.last_update(task_id, c))  # type: ignore[arg-type]
        if last is not None:
            yield last, update
    raw = storage.state_value(state_keys.reference(task_id, task.epoch))  # type: ignore[arg-type]
    if raw is not None:
        yield ReferenceRecord.decode(raw).reference, update


def live_blobs(storage: Storage) -> set[bytes]:
    """Every blob id the head state names, manifests expanded to their chunks."""
    live: set[bytes] = set()
    prefix = STATE_PREFIX + b"task/"
    for key, raw in storage.iter_prefix(prefix):
        task = TaskState.decode(raw)
        for blob_id, nbytes in _ids_of_task(storage, key[len(prefix) :], task):
            if blob_id == NO_BLOB or blob_id in live:
                continue
            live.add(blob_id)
            data = storage.blob(blob_id) if nbytes else None
            if data is not None and len(data) != nbytes:
                try:
                    m = Manifest.decode(data)
                except EncodingError:
                    continue
                live.update(m.hash(j) for j in range(m.count))
    return live


def sweep(storage: Storage, horizon: int, head: int) -> SweepResult:
    """Prune what was written at or below ``horizon`` and no state names (module docstring).

    A blob found live is filed again under ``head``: kept at least one retention period after
    the last sweep that found it named, and never in the way of the next sweep's batch."""
    result = SweepResult()
    if horizon < 0:
        return result
    live = live_blobs(storage)
    stop = P_BLOB_WRITTEN + _HEIGHT.pack(horizon + 1)
    entries: list[bytes] = []
    for key, _ in storage.iter_prefix(P_BLOB_WRITTEN):
        if key >= stop or len(entries) >= SWEEP_BATCH:
            break
        entries.append(key)
    for key in entries:
        at = len(P_BLOB_WRITTEN)
        height = _HEIGHT.unpack(key[at : at + 8])[0]
        blob_hash = key[at + 8 :]
        if blob_hash in live:
            storage.refile_blob(key, head, blob_hash)
            result.kept_live += 1
            continue
        data = storage.stored_blob(blob_hash)
        if data is None:
            storage.delete_raw(key)  # pruned already; a later write has its own entry
            continue
        carrier = _carrier(storage, blob_hash, height)
        if carrier < 0 and storage.state_value(state_keys.blob(blob_hash)) is not None:
            # an upload a later create_task or chunked reveal may name, found in no block:
            # never dropped (a pruned one would make this node refuse what others accept)
            storage.refile_blob(key, head, blob_hash)
            result.kept_live += 1
            continue
        storage.prune_blob(blob_hash, key, encoding.encode([horizon, carrier]))
        result.pruned += 1
        result.bytes += len(data)
        result.restorable += carrier >= 0
    return result


def _carrier(storage: Storage, blob_hash: bytes, written_at: int) -> int:
    """The height of a block that carries the blob's bytes: its upload's (``blob/`` leaf), else
    the block that wrote it if a transaction there carried it (an inline update); -1 if none."""
    meta = storage.state_value(state_keys.blob(blob_hash))
    candidates = [int(encoding.decode(meta)[2])] if meta is not None else []
    candidates.append(written_at)
    for height in candidates:
        block = storage.block_by_height(height)
        if block is not None and carried_bytes(block, blob_hash) is not None:
            return height
    return -1
