#!/usr/bin/env python
"""Ingest benchmark: how fast does a node accept signed transactions over loopback HTTP?

Usage: ``python bench/ingest.py [--quick]``

1. Starts ``mps-node run`` as a subprocess on a free loopback port, with
   limits that let 1 MB blobs through and nonce rules that never interfere.
2. For put_blob transactions with 1 KB, 100 KB and 1 MB payloads, and for
   JSON and msgpack request bodies to ``mps_sendTransaction`` and ``POST /txs``
   streams of 64 (``stream``: rpc/tx_stream.py, the path updates take), pre-signs
   every transaction and pre-builds every request body, then posts them over a few
   concurrent aiohttp connections and times how many the node accepts
   (accepted = admitted to the mempool: decode, stateless checks, signature,
   nonce rules, journal write to LevelDB).
3. Beside each figure it prints the raw single-core limit measured in the
   same run on the same transactions: ``Transaction.decode`` + hash + ed25519
   verify in a tight loop, and the ratio accepted / raw.
4. Measures state-tree updates per second committed to LevelDB in blocks of
   1,000 leaf updates of random keys (``State`` + ``commit(tree)`` +
   ``Storage.commit_block``, a synced WriteBatch per block), and the size of
   an inclusion proof at the final tree size.

Block production is idle during ingest (a long block time), so the figures
are admission throughput, not sealing throughput. Targets: ratio >= 0.5 for
100 KB transactions streamed; >= 50,000 tree updates/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import aiohttp  # noqa: E402
import msgpack  # noqa: E402
from node_process import NodeProcess  # noqa: E402

from client_sdk.keys import Keypair  # noqa: E402
from client_sdk.tx import put_blob  # noqa: E402
from mps_common.tx_stream import TX_STREAM, frame  # noqa: E402
from node.storage import Storage  # noqa: E402
from stf import encoding  # noqa: E402
from stf.block import Block, Header, receipts_root, tx_root  # noqa: E402
from stf.hashing import ZERO_HASH  # noqa: E402
from stf.smt import SparseMerkleTree  # noqa: E402
from stf.state import State  # noqa: E402
from stf.tx import ZERO_SIGNATURE, Transaction  # noqa: E402

CHAIN_ID = 4242
MAX_TX = 2 * 1024 * 1024 + 4096
MAX_BLOB = 2 * 1024 * 1024
SIZES = [("1 KB", 1_000), ("100 KB", 100_000), ("1 MB", 1_000_000)]
MEDIA = {"json": "application/json", "msgpack": "application/msgpack"}
CODECS = ("json", "msgpack", "stream")
STREAM_FRAMES = 64  # transactions per POST /txs body

# transactions per (size, codec) run, (full, quick)
COUNTS = {1_000: (8000, 1000), 100_000: (1000, 150), 1_000_000: (120, 20)}
TREE_BLOCKS = (100, 20)  # blocks of 1,000 leaf updates (full, quick)
RAW_MIN_SECONDS = (0.5, 0.15)

RATIO_TARGET = 0.5  # for 100 KB updates: the stream (POST /txs) is their path
TREE_TARGET = 50_000  # leaf updates per second


# -- the node ------------------------------------------------------------------


def ingest_node(workdir: Path, block_time: float) -> NodeProcess:
    """A node whose limits let 1 MB blobs through and whose nonce rules never interfere."""
    return NodeProcess(
        workdir,
        chain_id=CHAIN_ID,
        block_time=block_time,
        max_block_txs=1_000_000,
        max_tx_size=MAX_TX,
        max_blob_size=MAX_BLOB,
        max_body_size=64 * 1024 * 1024,
        mempool_max_txs=1_000_000,
        mempool_max_bytes=64 * 1024**3,
        max_nonce_gap=1_000_000,
        log_format="json",
        log_level="warning",
    )


# -- ingest ----------------------------------------------------------------------


@dataclass
class IngestResult:
    label: str
    codec: str
    size: int
    count: int
    accepted: int
    errors: list[Any]
    seconds: float
    raw_tx_s: float

    @property
    def tx_s(self) -> float:
        return self.accepted / self.seconds

    @property
    def mb_s(self) -> float:
        return self.accepted * self.size / self.seconds / 1e6

    @property
    def raw_mb_s(self) -> float:
        return self.raw_tx_s * self.size / 1e6

    @property
    def ratio(self) -> float:
        return self.tx_s / self.raw_tx_s


def presign(size: int, count: int, senders: int = 16) -> list[Transaction]:
    """``count`` signed put_blob txs of ``size`` random bytes, from fresh senders."""
    keys = [Keypair.generate() for _ in range(senders)]
    return [
        put_blob(keys[i % senders], CHAIN_ID, i // senders, os.urandom(size)) for i in range(count)
    ]


def request_body(raw: bytes, codec: str, rid: int) -> bytes:
    if codec == "msgpack":
        req = {"jsonrpc": "2.0", "id": rid, "method": "mps_sendTransaction", "params": [raw]}
        packed: bytes = msgpack.packb(req, use_bin_type=True)
        return packed
    req = {
        "jsonrpc": "2.0",
        "id": rid,
        "method": "mps_sendTransaction",
        "params": ["0x" + raw.hex()],
    }
    return json.dumps(req, separators=(",", ":")).encode()


def decode_reply(body: bytes, codec: str) -> Any:
    if codec == "msgpack":
        return msgpack.unpackb(body, raw=False, strict_map_key=False)
    return json.loads(body)


def raw_limit(raws: list[bytes], min_seconds: float) -> float:
    """Single-core decode + hash + ed25519 verify rate on these transactions (tx/s)."""
    n = 0
    t0 = time.perf_counter()
    while True:
        for raw in raws:
            tx = Transaction.decode(raw, MAX_TX)
            if len(tx.hash) != 32 or not tx.signature_valid():
                raise RuntimeError("benchmark transaction does not verify")
        n += len(raws)
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds:
            return n / elapsed


async def post_all(
    url: str, bodies: list[bytes], codec: str, concurrency: int
) -> tuple[int, list[Any], float]:
    """Post every body over ``concurrency`` connections; (accepted, errors, seconds). A
    ``stream`` body is a POST /txs of STREAM_FRAMES transactions, answered one per frame."""
    if codec == "stream":
        url, headers = (
            url.rstrip("/") + "/txs",
            {"Content-Type": TX_STREAM, "Accept": MEDIA["msgpack"]},
        )
    else:
        headers = {"Content-Type": MEDIA[codec], "Accept": MEDIA[codec]}
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=300)
    accepted = 0
    errors: list[Any] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def warm() -> None:  # open every connection before the clock starts
            body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "mps_chainId"}).encode()
            async with session.post(url, data=body, headers={"Content-Type": MEDIA["json"]}) as r:
                await r.read()

        await asyncio.gather(*(warm() for _ in range(concurrency)))
        queue = iter(bodies)

        async def worker() -> None:
            nonlocal accepted
            for body in queue:  # one shared iterator: each body is sent once
                async with session.post(url, data=body, headers=headers) as resp:
                    reply = decode_reply(
                        await resp.read(), "json" if codec == "json" else "msgpack"
                    )
                for answer in reply if codec == "stream" else [reply]:
                    if "error" in answer:
                        errors.append(answer["error"])
                    else:
                        accepted += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return accepted, errors, elapsed


def run_ingest(url: str, quick: bool, concurrency: int) -> list[IngestResult]:
    results = []
    min_raw = RAW_MIN_SECONDS[1 if quick else 0]
    for label, size in SIZES:
        count = COUNTS[size][1 if quick else 0]
        for codec in CODECS:
            txs = presign(size, count)
            raws = [tx.encode() for tx in txs]
            if codec == "stream":
                bodies = [
                    frame(raws[at : at + STREAM_FRAMES]) for at in range(0, count, STREAM_FRAMES)
                ]
            else:
                bodies = [request_body(raw, codec, i + 1) for i, raw in enumerate(raws)]
            del txs
            accepted, errors, seconds = asyncio.run(post_all(url, bodies, codec, concurrency))
            del bodies
            raw_tx_s = raw_limit(raws, min_raw)
            r = IngestResult(label, codec, size, count, accepted, errors, seconds, raw_tx_s)
            results.append(r)
            print(
                f"  ingest {label:>6} {codec:<7}: {r.tx_s:9,.0f} tx/s {r.mb_s:8.1f} MB/s"
                f"  (raw {r.raw_tx_s:9,.0f} tx/s, ratio {r.ratio:.2f}, {count} txs"
                f"{f', {len(errors)} REJECTED' if errors else ''})",
                flush=True,
            )
    return results


# -- state tree ------------------------------------------------------------------


@dataclass
class TreeResult:
    updates: int
    seconds: float
    leaves: int
    proof_siblings_avg: float
    proof_siblings_max: int
    proof_bytes_avg: float

    @property
    def rate(self) -> float:
        return self.updates / self.seconds


def run_tree(workdir: Path, blocks: int, per_block: int = 1000) -> TreeResult:
    storage = Storage(workdir / "tree.db")
    try:
        tree = SparseMerkleTree(storage)
        batches = [
            [(b"bench/" + os.urandom(32), os.urandom(32)) for _ in range(per_block)]
            for _ in range(blocks)
        ]
        root = ZERO_HASH
        parent = ZERO_HASH
        sequencer = b"\x00" * 32
        t0 = time.perf_counter()
        for height, batch in enumerate(batches, start=1):
            state = State(storage, root)
            for key, value in batch:
                state.set(key, value)
            root, writes = state.commit(tree)
            header = Header(
                CHAIN_ID,
                height,
                parent,
                height,
                0,
                ZERO_HASH,
                tx_root(()),
                receipts_root([]),
                root,
                sequencer,
            )
            storage.commit_block(Block(header, ZERO_SIGNATURE, ()), [], writes)
            parent = header.hash
        seconds = time.perf_counter() - t0

        # inclusion proofs for a sample of the keys, against the final root
        fresh = SparseMerkleTree(storage)  # a cold cache, as an RPC request would see it
        sample = [batches[i % blocks][(i * 7919) % per_block][0] for i in range(200)]
        sib_counts, sizes = [], []
        for key in sample:
            proof = fresh.prove(root, key)
            assert proof.leaf is not None
            sib_counts.append(len(proof.siblings))
            sizes.append(len(encoding.encode(proof.to_wire())))
        return TreeResult(
            blocks * per_block,
            seconds,
            blocks * per_block,
            statistics.mean(sib_counts),
            max(sib_counts),
            statistics.mean(sizes),
        )
    finally:
        storage.close()


# -- report ----------------------------------------------------------------------

HEADERS = ("benchmark", "measured", "raw 1-core", "ratio", "target", "result")


def print_table(ingest: list[IngestResult], tree: TreeResult) -> None:
    rows: list[tuple[str, ...]] = []
    for r in ingest:
        is_target = r.size == 100_000 and r.codec == "stream"
        target = f">= {RATIO_TARGET:.2f} ratio" if is_target else "-"
        if r.errors:
            result = "REJECTED"
        elif is_target:
            result = "PASS" if r.ratio >= RATIO_TARGET else "below target"
        else:
            result = "-"
        rows.append(
            (
                f"ingest {r.label} {r.codec}",
                f"{r.tx_s:,.0f} tx/s, {r.mb_s:,.1f} MB/s",
                f"{r.raw_tx_s:,.0f} tx/s, {r.raw_mb_s:,.1f} MB/s",
                f"{r.ratio:.2f}",
                target,
                result,
            )
        )
    rows.append(
        (
            "state tree updates (1,000/block, LevelDB)",
            f"{tree.rate:,.0f} updates/s",
            "-",
            "-",
            f">= {TREE_TARGET:,}/s",
            "PASS" if tree.rate >= TREE_TARGET else "below target",
        )
    )
    rows.append(
        (
            f"proof size at {tree.leaves:,} leaves",
            f"{tree.proof_bytes_avg:,.0f} bytes, {tree.proof_siblings_avg:.1f} siblings (max {tree.proof_siblings_max})",
            "-",
            "-",
            "-",
            "-",
        )
    )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(HEADERS)]

    def line(cells: tuple[str, ...]) -> str:
        return " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    print()
    print(line(HEADERS))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="a smaller run, well under 20 s")
    p.add_argument("--concurrency", type=int, default=4, help="concurrent HTTP connections")
    p.add_argument(
        "--block-time",
        type=float,
        default=3600.0,
        help="node block time; the default keeps block production idle during ingest",
    )
    args = p.parse_args(argv)
    started = time.perf_counter()
    print(
        f"mps ingest benchmark ({'quick' if args.quick else 'full'}): python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, {args.concurrency} connections, block time {args.block_time}s",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="mps-bench-") as tmp:
        work = Path(tmp)
        node = ingest_node(work, args.block_time)
        try:
            node.start()
            ingest = run_ingest(node.url, args.quick, args.concurrency)
        except BaseException:
            if node.log_path.exists():
                sys.stderr.write(node.log_path.read_text()[-4000:])
            raise
        finally:
            node.stop()
        tree = run_tree(work, TREE_BLOCKS[1 if args.quick else 0])
        print(
            f"  state tree: {tree.updates:,} updates in {tree.seconds:.2f}s = {tree.rate:,.0f}/s",
            flush=True,
        )
    print_table(ingest, tree)
    print(f"\ntotal {time.perf_counter() - started:.1f}s")
    rejected = sum(len(r.errors) for r in ingest)
    if rejected:
        first = next(r.errors[0] for r in ingest if r.errors)
        print(f"\n{rejected} transactions were rejected; first error: {first}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
