"""The base layer's records in the state tree: blob metadata and the L1 event cursor.

Like :mod:`stf.fl.records` (the FL records) and :mod:`stf.stakes` (stake records), each format
is one frozen dataclass with ``encode``/``decode`` over a canonical-msgpack positional list, so
its field order is written down once. Keys are in :mod:`stf.state_keys`.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import encoding
from .ids import ClientKey


@dataclass(frozen=True)
class BlobMeta:
    """``blob/<hash>``: a blob uploaded with ``put_blob``: its size, uploader and height.

    The bytes live beside the tree (content-addressed); this leaf is what makes a blob's
    presence provable and lets later transactions check sizes without reading it.
    """

    size: int
    uploader: ClientKey
    height: int

    def encode(self) -> bytes:
        return encoding.encode([self.size, self.uploader, self.height])

    @classmethod
    def decode(cls, raw: bytes) -> BlobMeta:
        size, uploader, height = encoding.expect_list(encoding.decode(raw), 3, "blob metadata")
        return cls(size, ClientKey(uploader), height)


@dataclass(frozen=True, order=True)
class L1Cursor:
    """``l1/last_event``: the position of the last L1 event the rollup consumed.

    Ordered like the L1 log itself, so a deposit at or before the cursor is a replay.
    """

    block: int
    log_index: int

    def encode(self) -> bytes:
        return encoding.encode([self.block, self.log_index])

    @classmethod
    def decode(cls, raw: bytes) -> L1Cursor:
        block, log_index = encoding.expect_list(encoding.decode(raw), 2, "l1 cursor")
        return cls(block, log_index)


@dataclass(frozen=True)
class ChainSpec:
    """``chain/spec``: the chain's consensus parameters, written once by the genesis block.

    In the state tree, the genesis state root commits them, and the L1 rollup contract holds
    that root: a verifier that rebuilds genesis from parameters it was told (the sequencer's
    ``mps_getGenesis``) finds any changed limit as a genesis root the L1 does not hold, so it
    trusts the L1 alone for them too.
    """

    chain_id: int
    sequencer: bytes
    max_tx_size: int
    max_block_txs: int
    max_record_size: int
    max_blob_size: int
    funding_window_blocks: int
    # appended when set, as Ethereum's header grew its base fee: a chain that does not price
    # its bytes keeps the seven fields, and the genesis root, it always had
    data_fee_per_mib: int = 0

    def encode(self) -> bytes:
        fields = [
            self.chain_id,
            self.sequencer,
            self.max_tx_size,
            self.max_block_txs,
            self.max_record_size,
            self.max_blob_size,
            self.funding_window_blocks,
        ]
        if self.data_fee_per_mib:
            fields.append(self.data_fee_per_mib)
        return encoding.encode(fields)

    @classmethod
    def decode(cls, raw: bytes) -> ChainSpec:
        v = encoding.decode(raw)
        if isinstance(v, list) and len(v) == 8:
            if not isinstance(v[7], int) or v[7] <= 0:
                raise encoding.EncodingError("chain spec: an eighth field is a positive fee")
            return cls(*v)
        return cls(*encoding.expect_list(v, 7, "chain spec"))
