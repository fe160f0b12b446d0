"""Federated-learning transactions, built exactly as the STF checks them.

The full client flow (staking on L1, training helpers, a Flower-style client)
comes with the SDK issue; these are the signed building blocks.

An update goes in two phases (commit-reveal, :mod:`stf.fl.commit`): :func:`commit_update`
while the epoch's commit phase runs, then :func:`submit_update` (the reveal) once its reveal
phase has opened; :func:`update_salt` derives the salt from the client's key, so a client that
restarts between the two can reveal the same update again without having stored anything.
The requester's reference update (:mod:`stf.fl.reference`) goes the same way: the same
builders with ``reference=True`` make ``commit_reference`` and ``reveal_reference``.

Arrays larger than one blob (updates over ``max_tx_size``, models over
``max_blob_size``) travel as chunk blobs plus a manifest (:mod:`stf.fl.chunks`):
:func:`submit_update_chunked` and :func:`model_blobs` build them, and
:func:`read_array` / :func:`read_model` read either form back through any
``get_blob`` (for example ``mps_getBlob``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import numpy.typing as npt

from stf import encoding
from stf.cid import cid_v1
from stf.context import Limits
from stf.fl.chunks import MAX_CHUNKS, Manifest
from stf.fl.commit import DOMAIN, REFERENCE_DOMAIN, SALT_BYTES, commitment
from stf.fl.data_budget import data_fee
from stf.fl.task import MODEL_DTYPE, TaskParams, quantize
from stf.fl.uploads import quota_of
from stf.ids import BlobId, ClientKey, TaskId
from stf.tx import Transaction, make_tx
from stf.txtypes.fl import (
    CommitReference,
    CommitUpdate,
    CreateTask,
    JoinTask,
    ReportEvaluation,
    RevealReference,
    SubmitUpdate,
)

from .errors import InvalidArgument
from .flow import drive
from .keys import Keypair
from .proofs import ProofError
from .tx import put_blob

#: The chain's default ``max_blob_size`` (a consensus limit: ask the chain's config if unsure).
DEFAULT_MAX_BLOB_SIZE = Limits().max_blob_size

__all__ = [
    "DEFAULT_MAX_BLOB_SIZE",
    "array_reader",
    "blob_id",
    "chunk_manifest",
    "commit_update",
    "create_task",
    "join_task",
    "model_blob",
    "model_blobs",
    "model_reader",
    "quantize",
    "read_array",
    "read_model",
    "report_evaluation",
    "script_cid",
    "split_chunks",
    "submit_update",
    "submit_update_chunked",
    "update_id",
    "update_salt",
]


def model_blob(weights: npt.ArrayLike, shift: int) -> bytes:
    """A float model as the int32 fixed-point blob a task starts from."""
    w = np.rint(np.asarray(weights, dtype=np.float64).ravel() * float(2**shift))
    lim = np.iinfo(np.int32)
    return bytes(np.clip(w, lim.min, lim.max).astype(MODEL_DTYPE).tobytes())


def data_fee_bound(params: TaskParams, pretask_bytes: int, fee_per_mib: int) -> int:
    """The most a task's data can cost its funder (wei), on a chain that prices it: its
    pre-task uploads, then in every epoch each client's and the requester's commitment reserving
    a whole upload quota (``stf.fl.data_budget``). What is reserved and not sent is not billed,
    so the bill is usually about half of this; a deposit below it means that commitments beyond
    what it pays for fail ``DATA_BUDGET_EXHAUSTED`` (nobody loses anything)."""
    quota = quota_of(params.d * params.np_dtype.itemsize)
    worst = pretask_bytes + params.epochs * (params.max_clients + 1) * quota
    return data_fee(worst, fee_per_mib)


def model_blobs(
    weights: npt.ArrayLike, shift: int, max_blob_size: int = DEFAULT_MAX_BLOB_SIZE
) -> tuple[BlobId, list[bytes]]:
    """A float model as the initial model of a task of any size: ``(init_model id, blobs)``.

    Upload the blobs in order with ``put_blob`` and pass the id as ``init_model``. A model
    that fits one blob is that blob; a larger one is its chunks followed by their manifest,
    whose id is the model's id.
    """
    data = model_blob(weights, shift)
    if len(data) <= max_blob_size:
        return blob_id(data), [data]
    chunks = split_chunks(data, max_blob_size)
    manifest = chunk_manifest(chunks)
    return blob_id(manifest), [*_distinct(chunks), manifest]


def split_chunks(data: bytes, max_blob_size: int = DEFAULT_MAX_BLOB_SIZE) -> list[bytes]:
    """Cut ``data`` into chunks of the largest multiple of 4 bytes that fits ``max_blob_size``
    (so no int8, int16 or int32 value straddles two), the last one shorter."""
    chunk = max_blob_size - max_blob_size % 4
    if chunk <= 0:
        raise InvalidArgument(f"max_blob_size {max_blob_size} is too small for chunks")
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    if not 1 <= len(chunks) <= MAX_CHUNKS:
        raise InvalidArgument(
            f"{len(data)} bytes make {len(chunks)} chunks, 1 to {MAX_CHUNKS} allowed"
        )
    return chunks


def chunk_manifest(chunks: list[bytes]) -> bytes:
    """The manifest the STF stores for these chunks; its :func:`blob_id` is the array's id."""
    total = sum(len(c) for c in chunks)
    return Manifest(total, len(chunks[0]), b"".join(blob_id(c) for c in chunks)).encode()


def _distinct(chunks: list[bytes]) -> list[bytes]:
    seen: set[bytes] = set()
    out = []
    for c in chunks:
        if c not in seen:
            seen.add(c)
            out.append(c)
    return out


def create_task(key: Keypair, chain_id: int, nonce: int, params: TaskParams) -> Transaction:
    """The task's id is this transaction's hash. Upload the model and script blobs first."""
    return make_tx(
        key.signing_key, chain_id, CreateTask.TYPE_ID, nonce, encoding.encode(params.to_list())
    )


def join_task(key: Keypair, chain_id: int, nonce: int, task_id: bytes) -> Transaction:
    return make_tx(key.signing_key, chain_id, JoinTask.TYPE_ID, nonce, encoding.encode([task_id]))


def update_id(data: bytes, max_blob_size: int, inline: bool) -> bytes:
    """The id the STF gives an update's bytes: their sha256 inline, else their manifest's."""
    if inline:
        return blob_id(data)
    return blob_id(chunk_manifest(split_chunks(data, max_blob_size)))


def update_salt(key: Keypair, task_id: bytes, epoch: int, update_id: bytes) -> bytes:
    """The commitment's salt: a keyed hash of what it commits to, secret while the key is."""
    msg = b"mps/update-salt/v1" + task_id + epoch.to_bytes(8, "big") + update_id
    return hashlib.blake2b(msg, key=key.seed, digest_size=SALT_BYTES).digest()


def commit_update(
    key: Keypair,
    chain_id: int,
    nonce: int,
    task_id: bytes,
    epoch: int,
    update_id: bytes,
    reference: bool = False,
) -> Transaction:
    """Phase one: the commitment to the update whose STF id is ``update_id``
    (:func:`update_id`), salted with :func:`update_salt`. ``reference``: the requester's
    ``commit_reference`` instead (:mod:`stf.fl.reference`)."""
    salt = update_salt(key, task_id, epoch, update_id)
    domain = REFERENCE_DOMAIN if reference else DOMAIN
    digest = commitment(
        TaskId(task_id), epoch, ClientKey(key.public_key), BlobId(update_id), salt, domain
    )
    type_id = CommitReference.TYPE_ID if reference else CommitUpdate.TYPE_ID
    return make_tx(
        key.signing_key, chain_id, type_id, nonce, encoding.encode([task_id, epoch, digest])
    )


def submit_update(
    key: Keypair,
    chain_id: int,
    nonce: int,
    task_id: bytes,
    epoch: int,
    update: Any,
    reference: bool = False,
) -> Transaction:
    """Phase two, the reveal of an inline update: ``update`` is the quantized integer array
    (see :func:`quantize`) or its bytes, committed to with :func:`commit_update`
    (``reference``: the requester's ``reveal_reference``)."""
    data = update if isinstance(update, bytes) else np.ascontiguousarray(update).tobytes()
    salt = update_salt(key, task_id, epoch, blob_id(data))
    return make_tx(
        key.signing_key,
        chain_id,
        _reveal_type(reference),
        nonce,
        encoding.encode([task_id, epoch, data, salt]),
    )


def _reveal_type(reference: bool) -> int:
    return RevealReference.TYPE_ID if reference else SubmitUpdate.TYPE_ID


def submit_update_chunked(
    key: Keypair,
    chain_id: int,
    nonce: int,
    task_id: bytes,
    epoch: int,
    update: Any,
    max_blob_size: int = DEFAULT_MAX_BLOB_SIZE,
    reference: bool = False,
) -> list[Transaction]:
    """The reveal of an update of any size: a ``put_blob`` per distinct chunk, then the
    ``submit_update`` (``reference``: ``reveal_reference``) naming them. Send them only once
    the reveal phase has opened: a chunk on chain before every commitment is fixed could be
    copied.

    The transactions take the nonces ``nonce, nonce + 1, ...`` in order; send them all (the
    submit after its chunks, in the same block or a later one). The update's id in the
    epoch's records is the :func:`blob_id` of :func:`chunk_manifest` of the chunks. A chunk
    that is already stored makes its ``put_blob`` fail (``blob is already stored``, the nonce
    still used), which does not matter: the submit only needs the chunk to exist. An update
    not longer than its manifest (a few hundred bytes) must go inline (:func:`submit_update`).
    """
    data = update if isinstance(update, bytes) else np.ascontiguousarray(update).tobytes()
    chunks = split_chunks(data, max_blob_size)
    manifest = chunk_manifest(chunks)
    if len(manifest) >= len(data):
        raise InvalidArgument(
            f"an update of {len(data)} bytes is too small to chunk: send it inline"
        )
    txs = [put_blob(key, chain_id, nonce + i, c, task_id) for i, c in enumerate(_distinct(chunks))]
    ids = [blob_id(c) for c in chunks]
    salt = update_salt(key, task_id, epoch, blob_id(manifest))
    payload = encoding.encode([task_id, epoch, ids, salt])
    type_id = _reveal_type(reference)
    txs.append(make_tx(key.signing_key, chain_id, type_id, nonce + len(txs), payload))
    return txs


def array_reader(
    array_id: bytes, dtype: npt.DTypeLike, count: int
) -> Generator[bytes, bytes, npt.NDArray[Any]]:
    """:func:`read_array` as a flow: it yields each blob id it needs and is sent the blob's bytes,
    so that the sync and async clients read arrays with this one copy of the logic."""
    dt = np.dtype(dtype)
    nbytes = count * dt.itemsize
    raw = _checked(array_id, (yield array_id))
    if len(raw) == nbytes:
        return np.frombuffer(raw, dt).copy()
    m = Manifest.decode(raw)
    if m.total != nbytes:
        raise ProofError(f"manifest holds {m.total} bytes, expected {nbytes}")
    out = bytearray()
    for j in range(m.count):
        chunk = _checked(m.hash(j), (yield m.hash(j)))
        if len(chunk) != m.size(j):
            raise ProofError(f"chunk {j} is {len(chunk)} bytes, the manifest says {m.size(j)}")
        out += chunk
    return np.frombuffer(bytes(out), dt).copy()


def read_array(
    get_blob: Callable[[bytes], bytes], array_id: bytes, dtype: npt.DTypeLike, count: int
) -> npt.NDArray[Any]:
    """``count`` values of ``dtype`` stored under ``array_id`` (a blob, or a chunk manifest).

    ``get_blob(id) -> bytes`` fetches one blob (e.g. ``mps_getBlob``); each chunk is checked
    against its id. The array's size tells the forms apart: a blob of exactly ``count`` values
    is the array, anything else is a manifest.
    """
    return drive(array_reader(array_id, dtype, count), get_blob)


def model_reader(
    model_id: bytes, params: TaskParams
) -> Generator[bytes, bytes, npt.NDArray[np.float64]]:
    """:func:`read_model` as a flow (see :func:`array_reader`)."""
    w = yield from array_reader(model_id, MODEL_DTYPE, params.d)
    return w.astype(np.float64) / float(2**params.shift)


def read_model(
    get_blob: Callable[[bytes], bytes], model_id: bytes, params: TaskParams
) -> npt.NDArray[np.float64]:
    """A task's int32 model (``baseModel``, ``nextBaseModel``...) as floats (``W * 2**-shift``)."""
    return drive(model_reader(model_id, params), get_blob)


def _checked(h: bytes, data: bytes) -> bytes:
    data = bytes(data)
    if blob_id(data) != h:
        raise ProofError(f"blob {h.hex()} does not hash to its id")
    return data


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


def blob_id(data: bytes) -> BlobId:
    """A blob's id on chain: the sha256 of its bytes (what ``mps_getBlob`` takes)."""
    return BlobId(hashlib.sha256(data).digest())


def script_cid(data: bytes) -> str:
    """The raw-codec CIDv1 (``bafkrei...``) of a blob's bytes: :func:`stf.cid.cid_v1` of its id.

    It is what ``ipfs block put`` gives for the bytes, and ``ipfs add --cid-version 1`` for a
    file that fits in one chunk (256 KiB by default); see :mod:`stf.cid`. Any blob works,
    models too; ``mps_getTask`` reports it as ``scriptCid`` / ``initModelCid``.
    """
    return cid_v1(blob_id(data))
