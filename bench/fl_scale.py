#!/usr/bin/env python
"""Epoch close at scale: time and peak memory of the STF's own close for n clients x d params.

Usage: ``python bench/fl_scale.py [--quick | --big] [--sizes N:D,...] [--budget MIB]
[--dtype int8|int16] [--commit] [--leveldb] [--ranks R,R,...]``

For each ``(n, d)`` (default ``(16, 10**7)``; ``--quick``: ``(16, 10**6)``; ``--big`` adds
``(1000, 10**6)`` and ``(10, 10**8)``) a fresh subprocess builds, in an in-memory store, an
open task at epoch 1 whose ``n`` clients have all submitted: every update, every client's
previous update, the previous global step and the base model stored as they would be on
chain (one blob up to ``max_blob_size``, 4 MiB, else chunks and a manifest). Updates are a
common direction plus per-client noise, so every rule and the aggregate do real work. Then
it runs :func:`stf.fl.epoch.close_epoch` (both passes: inner products, then the aggregate
and the next base model written in chunks) and prints:

* the close's wall time;
* RSS before the close, the peak RSS sampled during it (every 2 ms) and the increment (RSS
  here: anonymous memory, resident minus file-backed pages); and ``ru_maxrss``, the process's
  peak (the store's arrays, and with ``--leveldb`` the mapped table pages, included);
* what the epoch would need without chunking: the ``n x d`` stacked update matrix alone
  (the old close also held every update blob and a copy of the selected rows).

With ``--ranks 1,2,4`` each size is closed first by the plain close (one process), then by a
gloo group of each many processes (:mod:`node.sharded_close`: each rank reads its column range,
the exact int64 sums are all-reduced, the aggregate's ranges broadcast in order); each row
prints the close's wall time (the slowest rank), its speed-up over the plain close, the close's
own memory increment per rank, and whether every rank's result digest (the state root and every
write, blobs included) is the plain close's; the exit status is 1 if one is not. Each rank
builds the whole store itself, as a replica would hold it.
On a cluster or GPUs, start one process per rank with torchrun instead, e.g. ``torchrun
--nnodes 4 --nproc-per-node 1 --rdzv-endpoint HOST:29500 bench/fl_scale.py --torchrun --sizes
1000:1e8 --dist nccl --kernels torch:cuda``: each rank prints its time, memory and digest (the
plain close's digest is the first row of ``--ranks 1`` on any one machine).

With ``--leveldb`` the close reads from the node's own LevelDB storage (written, closed and
reopened first), as a node does: a read copies a whole blob out of LevelDB, so each column block
re-reads the blobs it spans; the output says how many reads and bytes that took.

The in-memory store holds every update twice (this epoch's and the previous one), so the
process RSS is dominated by the store; the increment is the close's own working set:
``n`` x one block of raw values (the ``--budget``, default 256 MiB, not consensus), O(n^2),
and the next base model and step being written (``d x (4 + itemsize)`` bytes: the STF
returns its writes, blobs included, to the caller in memory).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from stf import state_keys  # noqa: E402
from stf.context import BlockContext, Limits  # noqa: E402
from stf.fl import epoch as fl_epoch  # noqa: E402
from stf.fl.chunks import Manifest  # noqa: E402
from stf.fl.records import ClientRecord  # noqa: E402
from stf.fl.rules import EpochRules  # noqa: E402
from stf.fl.task import DTYPES, MODEL_DTYPE, OPEN, TaskParams, TaskState  # noqa: E402
from stf.hashing import ZERO_HASH  # noqa: E402
from stf.state import BLOB_PREFIX, STATE_PREFIX, State  # noqa: E402

DEFAULT_SIZES = [(16, 10**7)]
QUICK_SIZES = [(16, 10**6)]
BIG_SIZES = [(16, 10**7), (1000, 10**6), (10, 10**8)]
PAGE = os.sysconf("SC_PAGE_SIZE")


class MemStore:
    """A dict-backed :class:`stf.state.KVReader` (as in tests/conftest.py)."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)


def rss() -> int:
    """Resident memory the process holds itself: resident minus shared (file-backed) pages.

    LevelDB maps its table files, and the pages a read touches count as resident although they
    are page cache the kernel may drop; they are left out so the two stores compare fairly.
    """
    with open("/proc/self/statm") as f:
        fields = f.read().split()
    return (int(fields[1]) - int(fields[2])) * PAGE


def maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


class Sampler(threading.Thread):
    """The highest RSS seen while running (numpy releases the GIL in its big loops)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = rss()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.002):
            self.peak = max(self.peak, rss())

    def stop(self) -> int:
        self._halt.set()
        self.join()
        self.peak = max(self.peak, rss())
        return self.peak


def put_array(store: MemStore, data: bytes, max_blob: int) -> bytes:
    """Store ``data`` as the chain would (one blob, or chunks and a manifest); return the id."""

    def put(blob: bytes) -> bytes:
        h = hashlib.sha256(blob).digest()
        store.data[BLOB_PREFIX + h] = blob
        return h

    if len(data) <= max_blob:
        return put(data)
    chunk = max_blob - max_blob % 4
    hashes = [put(data[i : i + chunk]) for i in range(0, len(data), chunk)]
    return put(Manifest(len(data), chunk, b"".join(hashes)).encode())


def build(n: int, d: int, dtype: str, seed: int = 1) -> tuple[MemStore, bytes, TaskState]:
    """An open task at epoch 1 whose n clients all submitted; everything in one MemStore."""
    dt = DTYPES[dtype]
    lim = np.iinfo(dt).max
    max_blob = Limits().max_blob_size
    store = MemStore()
    rng = np.random.default_rng(seed)
    scale = 1 if dt.itemsize == 1 else 100
    direction = rng.integers(-30, 31, d, dtype=np.int16)
    noise = np.empty(d, dtype=np.int16)

    def update() -> bytes:
        noise[:] = rng.integers(-20, 21, d, dtype=np.int8)
        noise[:] += direction
        u = np.clip(noise * scale, -lim, lim).astype(dt) if scale > 1 else noise.astype(dt)
        return u.tobytes()

    base = rng.integers(-1000, 1000, d, dtype=np.int32).astype(MODEL_DTYPE).tobytes()
    base_id = put_array(store, base, max_blob)
    del base
    step_id = put_array(store, (direction // 2).astype(dt).tobytes(), max_blob)
    clients = [hashlib.sha256(b"client %d" % i).digest() for i in range(n)]
    task_id = hashlib.sha256(b"task").digest()
    pending = []
    for i, c in enumerate(clients):
        pending.append(put_array(store, update(), max_blob))
        if i % 5 == 4:
            continue  # a client new to the task: no previous update (the close's absent figures)
        last = put_array(store, update(), max_blob)
        store.data[STATE_PREFIX + state_keys.last_update(task_id, c)] = last
    params = TaskParams(
        name="scale",
        layout=(("w", (d,)),),
        dtype=dtype,
        shift=8,
        init_model=base_id,
        script=bytes(32),
        epochs=10,
        target_accuracy_ppm=1_000_000,
        min_clients=n,
        max_clients=n,
        window_blocks=10,
        evaluator=bytes(32),
        rules=EpochRules(f=max(0, min(n // 5, (n - 3) // 2))),
    )
    task = TaskState(
        params,
        bytes(32),
        OPEN,
        epoch=1,
        base=base_id,
        prev_global=step_id,
        epoch_start=1,
        clients=clients,
        submitted=list(clients),
        pending=pending,
    )
    store.data[STATE_PREFIX + state_keys.task(task_id)] = task.encode()
    return store, task_id, task


class CountingReader:
    """Counts the reads (and bytes) the close makes of the store under it."""

    def __init__(self, store: Any) -> None:
        self.store, self.reads, self.bytes = store, 0, 0

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.store.get(key)
        self.reads += 1
        self.bytes += len(value) if value is not None else 0
        return value


def on_leveldb(store: MemStore, path: Path) -> Any:
    """The store's entries in the node's LevelDB storage at ``path``, reopened cold."""
    from node.storage import Storage

    with Storage(path) as db:
        for key, value in store.data.items():
            db.put_raw(key, value)
    return Storage(path)


def result_digest(state: State) -> str:
    """sha256 over the state root and every store write the close implies (blobs included):
    equal digests mean byte-identical closes."""
    root, writes = state.commit()
    h = hashlib.sha256(root)
    for key in sorted(writes):
        value = writes[key]
        h.update(len(key).to_bytes(4, "big") + key)
        h.update(b"\xff" if value is None else len(value).to_bytes(8, "big") + value)
    return h.hexdigest()


def sharded_passes(
    world: int,
    rank: int,
    rdzv: str,
    budget: int,
    dist_backend: str = "gloo",
    kernels: str = "numpy",
) -> Any:
    """Join a group of ``world`` processes at ``rdzv`` (once); the close's sharded passes.
    NCCL's collectives take GPU tensors, gloo's CPU ones."""
    import torch.distributed as dist

    from node.sharded_close import ShardedPasses

    if not dist.is_initialized():
        if dist_backend == "nccl":  # one GPU per local rank
            import torch

            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(
            dist_backend,
            init_method=rdzv,
            world_size=world,
            rank=rank,
            timeout=datetime.timedelta(minutes=10),
        )
    device = "cuda" if dist_backend == "nccl" else "cpu"
    return ShardedPasses(backend=kernels, budget_bytes=budget, device=device)


def leave_group() -> None:
    """Wait for every rank, then close the group: a rank that exits while gloo's threads still
    run aborts (SIGABRT, "terminate called without an active exception")."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def one(
    n: int,
    d: int,
    dtype: str,
    budget: int,
    commit: bool,
    leveldb: bool = False,
    shard: tuple[int, int, str] | None = None,
    digest: bool = False,
    dist_backend: str = "gloo",
    kernels: str = "numpy",
) -> dict[str, Any]:
    """One close, or with ``shard = (world, rank, rdzv)`` this rank's part of a sharded one;
    ``digest``: also the result's :func:`result_digest` (after the figures are taken)."""
    passes = None
    if shard:
        passes = sharded_passes(shard[0], shard[1], shard[2], budget, dist_backend, kernels)
    t0 = time.perf_counter()
    store, task_id, task = build(n, d, dtype)
    stored = sum(len(v) for v in store.data.values())
    tmp = None
    reader: Any = store
    if leveldb:
        tmp = Path(tempfile.mkdtemp(prefix="fl_scale_"))
        reader = on_leveldb(store, tmp / "db")
        del store
    setup_s = time.perf_counter() - t0
    counting = CountingReader(reader)
    state = State(counting, ZERO_HASH)
    ctx = BlockContext(height=20, timestamp_ms=0, l1_origin_number=0, limits=Limits())
    before, max_before = rss(), maxrss()
    sampler = Sampler()
    sampler.start()
    t0 = time.perf_counter()
    fl_epoch.close_epoch(state, task_id, task, ctx, kernels, budget, passes)
    close_s = time.perf_counter() - t0
    commit_s = None
    if commit:
        t0 = time.perf_counter()
        state.commit()
        commit_s = time.perf_counter() - t0
    peak = sampler.stop()
    result = result_digest(state) if digest else None
    reads, read_bytes = counting.reads, counting.bytes
    flagged = 0
    for c in task.clients:
        raw = state.get(state_keys.client_record(task_id, 1, c))
        assert raw is not None
        flagged += ClientRecord.decode(raw).flags != 0
    if tmp is not None:
        reader.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "n": n,
        "d": d,
        "dtype": dtype,
        "budget": budget,
        "setup_s": setup_s,
        "close_s": close_s,
        "commit_s": commit_s,
        "stored": stored,
        "rss_before": before,
        "rss_peak": peak,
        "maxrss_before": max_before,
        "maxrss_after": maxrss(),
        "flagged": flagged,
        "stacked": n * d * DTYPES[dtype].itemsize,
        "outputs": d * (MODEL_DTYPE.itemsize + DTYPES[dtype].itemsize),
        "store": "node LevelDB" if leveldb else "the in-memory store",
        "reads": reads,
        "read_bytes": read_bytes,
        "digest": result,
    }


def mib(x: float) -> str:
    m = x / 2**20
    return f"{m:,.0f} MiB" if abs(m) >= 10 else f"{m:.2f} MiB"


def run_sharded(n: int, d: int, dtype: str, budget: int, world: int) -> list[dict[str, Any]]:
    """``world`` processes, one per rank, closing the same epoch together; their results.
    ``world = 0``: the plain close (:class:`stf.fl.passes.LocalPasses`) in one process."""
    tmp = Path(tempfile.mkdtemp(prefix="fl_scale_rdzv_"))
    rdzv = f"file://{tmp / 'rdzv'}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    base = [sys.executable, __file__, "--one", f"{n}:{d}", "--dtype", dtype, "--digest"]
    base += ["--budget", str(budget / 2**20)]
    procs = [
        subprocess.Popen(
            [*base, "--shard", f"{world}:{r}:{rdzv}"] if world else base,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for r in range(max(1, world))
    ]
    out = []
    try:
        for r, p in enumerate(procs):
            stdout, stderr = p.communicate(timeout=3600)
            if p.returncode != 0:
                raise RuntimeError(f"rank {r} exited {p.returncode}: {stderr[-2000:]}")
            out.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for p in procs:
            p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def print_sharded(n: int, d: int, dtype: str, budget: int, ranks: list[int]) -> bool:
    """Time and memory per rank of the close over each rank count, after the plain close (the
    reference); True if every rank's digest equals the plain close's."""
    first: tuple[float, str] | None = None
    same = True
    for world in [0, *ranks]:
        rs = run_sharded(n, d, dtype, budget, world)
        close = max(r["close_s"] for r in rs)
        incs = [r["rss_peak"] - r["rss_before"] for r in rs]
        read = max(r["read_bytes"] for r in rs)
        digests = {r["digest"] for r in rs}
        if first is None:
            first = (close, rs[0]["digest"])
        agree = len(digests) == 1 and rs[0]["digest"] == first[1]
        same &= agree
        print(
            f"n={n:>5} d={d:.0e} "
            + (f"ranks={world}" if world else "plain  ")
            + f": close {close:.2f} s (x{first[0] / close:.2f} of the plain close); close's own "
            f"increment per rank max {mib(max(incs))}; read per rank max {mib(read)}; result "
            f"digest {rs[0]['digest'][:16]} "
            + ("identical to the plain close's" if agree else "DIFFERS on a rank")
        )
    return same


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="n=16, d=1e6 only")
    ap.add_argument("--big", action="store_true", help="also (1000, 1e6) and (10, 1e8)")
    ap.add_argument("--sizes", help="N:D,N:D,... (overrides the presets)")
    ap.add_argument("--budget", type=float, default=None, help="block budget in MiB (256)")
    ap.add_argument("--dtype", default="int8", choices=sorted(DTYPES))
    ap.add_argument("--commit", action="store_true", help="also time State.commit()")
    ap.add_argument("--leveldb", action="store_true", help="read from the node's LevelDB")
    ap.add_argument("--ranks", help="R,R,...: the close sharded over R gloo processes each")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--shard", help=argparse.SUPPRESS)  # WORLD:RANK:RDZV
    ap.add_argument("--digest", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument(
        "--torchrun", action="store_true", help="this process is one rank started by torchrun"
    )
    ap.add_argument("--dist", default="gloo", choices=("gloo", "nccl"), help="with --torchrun")
    ap.add_argument("--kernels", default="numpy", help="numpy, torch or torch:cuda (same bytes)")
    args = ap.parse_args()
    budget = fl_epoch.DEFAULT_BUDGET_BYTES if args.budget is None else int(args.budget * 2**20)
    if args.one:
        n, d = (int(float(x)) for x in args.one.split(":"))
        shard = None
        if args.shard:
            world, rank, rdzv = args.shard.split(":", 2)
            shard = (int(world), int(rank), rdzv)
        result = one(n, d, args.dtype, budget, args.commit, args.leveldb, shard, args.digest)
        print(json.dumps(result), flush=True)
        if shard:
            leave_group()
        return
    if args.sizes:
        sizes = [tuple(int(float(x)) for x in s.split(":")) for s in args.sizes.split(",")]
    else:
        sizes = QUICK_SIZES if args.quick else BIG_SIZES if args.big else DEFAULT_SIZES
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
        f"{platform.machine()}; block budget {mib(budget)}; {args.dtype}; "
        + ("node LevelDB" if args.leveldb else "in-memory store")
    )
    if args.torchrun:  # RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT come from torchrun
        world, rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
        for n, d in sizes:
            row = one(
                n,
                d,
                args.dtype,
                budget,
                False,
                False,
                (world, rank, "env://"),
                True,
                args.dist,
                args.kernels,
            )
            inc = row["rss_peak"] - row["rss_before"]
            print(
                f"rank {rank}/{world} n={n} d={d:.0e} {args.dist} {args.kernels}: close "
                f"{row['close_s']:.2f} s, close's own increment {mib(inc)}, read "
                f"{mib(row['read_bytes'])}, digest {row['digest']}",
                flush=True,
            )
        leave_group()
        return
    if args.ranks:
        ranks = [int(r) for r in args.ranks.split(",")]
        failed = False
        for n, d in sizes:
            failed |= not print_sharded(n, d, args.dtype, budget, ranks)
        raise SystemExit(1 if failed else 0)
    for n, d in sizes:
        cmd = [sys.executable, __file__, "--one", f"{n}:{d}", "--dtype", args.dtype]
        cmd += ["--budget", str(budget / 2**20)] + (["--commit"] if args.commit else [])
        cmd += ["--leveldb"] if args.leveldb else []
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            print(f"n={n} d={d:.0e}: FAILED (exit {res.returncode})\n{res.stderr[-2000:]}")
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        inc = r["rss_peak"] - r["rss_before"]
        print(
            f"n={n:>5} d={d:.0e}: close {r['close_s']:.2f} s"
            + (f" (+ commit {r['commit_s']:.2f} s)" if r["commit_s"] is not None else "")
            + f"; setup {r['setup_s']:.1f} s; {r['flagged']} flagged; {r['reads']:,} reads of "
            f"{r['store']} ({r['read_bytes'] / 2**30:.1f} GiB)\n"
            f"    store {mib(r['stored'])}; RSS before close {mib(r['rss_before'])}, "
            f"peak during close {mib(r['rss_peak'])} (+{mib(inc)}); ru_maxrss "
            f"{mib(r['maxrss_after'])}\n"
            f"    close's own increment {mib(inc)} (block budget {mib(r['budget'])}, plus "
            f"{mib(r['outputs'])} of next base model and step written); without chunking "
            f"the stacked n x d matrix alone is {mib(r['stacked'])}"
        )


if __name__ == "__main__":
    main()
