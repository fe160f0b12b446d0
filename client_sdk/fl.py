"""Federated-learning transactions, built exactly as the STF checks them.

The full client flow (staking on L1, training helpers, a Flower-style client)
comes with the SDK issue; these are the signed building blocks.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import numpy.typing as npt

from stf import encoding
from stf.cid import cid_v1
from stf.fl.task import MODEL_DTYPE, TaskParams, quantize
from stf.tx import Transaction, make_tx
from stf.txtypes.fl import CreateTask, JoinTask, ReportEvaluation, SubmitUpdate

from .keys import Keypair

__all__ = [
    "blob_id",
    "create_task",
    "join_task",
    "model_blob",
    "quantize",
    "report_evaluation",
    "script_cid",
    "submit_update",
]


def model_blob(weights: npt.ArrayLike, shift: int) -> bytes:
    """A float model as the int32 fixed-point blob a task starts from."""
    w = np.rint(np.asarray(weights, dtype=np.float64).ravel() * float(2**shift))
    lim = np.iinfo(np.int32)
    return bytes(np.clip(w, lim.min, lim.max).astype(MODEL_DTYPE).tobytes())


def create_task(key: Keypair, chain_id: int, nonce: int, params: TaskParams) -> Transaction:
    """The task's id is this transaction's hash. Upload the model and script blobs first."""
    return make_tx(
        key.signing_key, chain_id, CreateTask.TYPE_ID, nonce, encoding.encode(params.to_list())
    )


def join_task(key: Keypair, chain_id: int, nonce: int, task_id: bytes) -> Transaction:
    return make_tx(key.signing_key, chain_id, JoinTask.TYPE_ID, nonce, encoding.encode([task_id]))


def submit_update(
    key: Keypair, chain_id: int, nonce: int, task_id: bytes, epoch: int, update: Any
) -> Transaction:
    """``update``: the quantized integer array (see :func:`quantize`) or its bytes."""
    data = update if isinstance(update, bytes) else np.ascontiguousarray(update).tobytes()
    return make_tx(
        key.signing_key,
        chain_id,
        SubmitUpdate.TYPE_ID,
        nonce,
        encoding.encode([task_id, epoch, data]),
    )


def report_evaluation(
    key: Keypair, chain_id: int, nonce: int, task_id: bytes, epoch: int, accuracy: float
) -> Transaction:
    ppm = round(accuracy * 1_000_000)
    return make_tx(
        key.signing_key,
        chain_id,
        ReportEvaluation.TYPE_ID,
        nonce,
        encoding.encode([task_id, epoch, ppm]),
    )


def blob_id(data: bytes) -> bytes:
    """A blob's id on chain: the sha256 of its bytes (what ``mps_getBlob`` takes)."""
    return hashlib.sha256(data).digest()


def script_cid(data: bytes) -> str:
    """The raw-codec CIDv1 (``bafkrei...``) of a blob's bytes: :func:`stf.cid.cid_v1` of its id.

    It is what ``ipfs block put`` gives for the bytes, and ``ipfs add --cid-version 1`` for a
    file that fits in one chunk (256 KiB by default); see :mod:`stf.cid`. Any blob works,
    models too; ``mps_getTask`` reports it as ``scriptCid`` / ``initModelCid``.
    """
    return cid_v1(blob_id(data))
