#!/usr/bin/env python
"""Soak benchmark: a node under honest traffic, alone and beside every attack of issue 13.

Usage: ``python bench/soak.py [--seconds 60] [--quick] [--attacks all|none|a,b,...]``

Runs ``mps-node run`` (default limits, loopback only) twice for ``--seconds`` each: once with
honest traffic only, once with the same honest traffic plus the attacks, and prints one table
of both. Honest traffic: ``--honest`` clients each sending a 1 KiB ``put_record`` every 200 ms
(their nonces in order) and a reader asking ``mps_blockNumber`` every 100 ms. Measured: honest
send and read latency (p50/p99), the time from acknowledgement to inclusion, honest
transactions refused, and **lost** (acknowledged, never included: the target is 0), the node's
peak RSS (``VmHWM``), and block seal times from its JSON log.

The attacks, each bounded so that the run stays on one machine:

* ``amplify``: a 16 MiB msgpack body of empty arrays every 2 s (the decoder's limits);
* ``pin``: never-executable transactions (nonces 1..63) from fresh keys, four at a time;
* ``blobs``: 1 MiB ``put_blob`` from fresh unstaked keys, two a second (``--funded``: on a chain
  that funds its tasks, where a blob needs a task and a quota, so each is refused at once);
* ``failing``: 1 MiB inline reveals for a task that does not exist, from fresh unstaked keys,
  two a second (a large transaction that would fail is never included: refused at once);
* ``fetch``: batches of 100 ``mps_getBlob`` of a 1 MiB blob (the response cap);
* ``slowloris``: 200 sockets trickling a header byte every 5 s (the connection guard);
* ``ws``: WebSocket connections subscribing 1,000 times each (the subscription caps);
* ``deep``: JSON nested 10,000 levels deep.

Figures only; nothing here asserts a speed (tests/test_bench_smoke.py runs three seconds a
phase and asserts only that no acknowledged honest transaction is lost).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import aiohttp  # noqa: E402
import msgpack  # noqa: E402
from node_process import NodeProcess  # noqa: E402

from client_sdk.fl import submit_update  # noqa: E402
from client_sdk.keys import Keypair  # noqa: E402
from client_sdk.tx import put_blob, put_record  # noqa: E402

CHAIN_ID = 4242
ATTACKS = ("amplify", "pin", "blobs", "failing", "fetch", "slowloris", "ws", "deep")
# loopback source addresses (all of 127/8 reaches the node): the node limits connections per
# address, so honest clients come from their own, the slowloris from another, the rest from one
HONEST_ADDRESS = "127.0.0.2"
SLOWLORIS_ADDRESS = "127.0.0.3"
ATTACKER_ADDRESS = "127.0.0.1"


def session(source: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0)))


@dataclass
class Honest:
    send_ms: list[float] = field(default_factory=list)
    read_ms: list[float] = field(default_factory=list)
    acked: dict[str, float] = field(default_factory=dict)  # tx hash -> when acknowledged
    included_s: list[float] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    lost: int = 0


@dataclass
class Phase:
    label: str
    honest: Honest
    rss_mib: float
    seal_ms: list[float]
    attacks: dict[str, Counter[str]]


def rpc_body(method: str, params: list[Any], rid: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}


async def call(session: aiohttp.ClientSession, url: str, method: str, *params: Any) -> Any:
    async with session.post(url, json=rpc_body(method, list(params))) as resp:
        return await resp.json(content_type=None)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- honest traffic -------------------------------------------------------------------------
async def honest_sender(url: str, stop: asyncio.Event, out: Honest) -> None:
    key = Keypair.generate()
    nonce = 0
    async with session(HONEST_ADDRESS) as s:
        while not stop.is_set():
            raw = put_record(key, CHAIN_ID, nonce, "n", os.urandom(1024)).encode()
            t0 = time.perf_counter()
            try:
                answer = await call(s, url, "mps_sendTransaction", "0x" + raw.hex())
            except (TimeoutError, aiohttp.ClientError) as exc:
                out.refused[type(exc).__name__] += 1
            else:
                out.send_ms.append((time.perf_counter() - t0) * 1000)
                if "result" in answer:
                    out.acked[answer["result"]] = time.monotonic()
                    nonce += 1
                else:
                    out.refused[str(answer["error"]["code"])] += 1
            await asyncio.sleep(0.2)


async def honest_reader(url: str, stop: asyncio.Event, out: Honest) -> None:
    async with session(HONEST_ADDRESS) as s:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                await call(s, url, "mps_blockNumber")
                out.read_ms.append((time.perf_counter() - t0) * 1000)
            except (TimeoutError, aiohttp.ClientError) as exc:
                out.refused[f"read {type(exc).__name__}"] += 1
            await asyncio.sleep(0.1)


async def watch_inclusion(url: str, stop: asyncio.Event, out: Honest, grace: float) -> None:
    """Poll the receipts of acknowledged transactions while the run lasts (inclusion latency,
    to within the 250 ms poll), then up to ``grace`` seconds more; what is left is lost."""
    seen: set[str] = set()
    deadline = float("inf")
    async with session(HONEST_ADDRESS) as s:
        while True:
            if stop.is_set() and deadline == float("inf"):
                deadline = time.monotonic() + grace
            pending = [h for h in out.acked if h not in seen]
            if (stop.is_set() and not pending) or time.monotonic() > deadline:
                break
            for h in pending:
                try:
                    answer = await call(s, url, "mps_getTransactionReceipt", h)
                except (TimeoutError, aiohttp.ClientError):
                    continue
                if answer.get("result"):
                    seen.add(h)
                    out.included_s.append(time.monotonic() - out.acked[h])
            await asyncio.sleep(0.25)
    out.lost = len([h for h in out.acked if h not in seen])


# -- attacks ------------------------------------------------------------------------------
Attack = Callable[[str, int, asyncio.Event, Counter[str]], Awaitable[None]]


async def answer_kind(resp: aiohttp.ClientResponse) -> str:
    body = await resp.read()
    try:
        if resp.content_type == "application/msgpack":
            err = msgpack.unpackb(body).get("error")
        else:
            err = json.loads(body).get("error")
    except (ValueError, AttributeError, msgpack.UnpackException):
        return f"http {resp.status}"
    return f"http {resp.status}" if not err else f"code {err['code']}"


async def amplify(url: str, _: int, stop: asyncio.Event, seen: Counter[str]) -> None:
    n = 16 * 1024 * 1024
    body = b"\xdd" + n.to_bytes(4, "big") + b"\x90" * n
    headers = {"Content-Type": "application/msgpack"}
    async with session(ATTACKER_ADDRESS) as s:
        while not stop.is_set():
            try:
                async with s.post(url, data=body, headers=headers) as resp:
                    seen[await answer_kind(resp)] += 1
            except aiohttp.ClientError as exc:
                seen[type(exc).__name__] += 1
            await asyncio.sleep(2)


async def pin(url: str, _: int, stop: asyncio.Event, seen: Counter[str]) -> None:
    async def worker() -> None:
        async with session(ATTACKER_ADDRESS) as s:
            while not stop.is_set():
                key = Keypair.generate()
                for nonce in range(1, 64):
                    if stop.is_set():
                        return
                    raw = put_blob(key, CHAIN_ID, nonce, b"p").encode()
                    try:
                        answer = await call(s, url, "mps_sendTransaction", "0x" + raw.hex())
                        seen[
                            "accepted" if "result" in answer else str(answer["error"]["code"])
                        ] += 1
                    except aiohttp.ClientError as exc:
                        seen[type(exc).__name__] += 1

    await asyncio.gather(*(worker() for _ in range(4)))


async def blobs(url: str, _: int, stop: asyncio.Event, seen: Counter[str]) -> None:
    async with session(ATTACKER_ADDRESS) as s:
        while not stop.is_set():
            raw = put_blob(Keypair.generate(), CHAIN_ID, 0, os.urandom(1024 * 1024)).encode()
            try:
                answer = await call(s, url, "mps_sendTransaction", "0x" + raw.hex())
                seen["accepted" if "result" in answer else str(answer["error"]["code"])] += 1
            except aiohttp.ClientError as exc:
                seen[type(exc).__name__] += 1
            await asyncio.sleep(0.5)


async def failing(url: str, _: int, stop: asyncio.Event, seen: Counter[str]) -> None:
    """Storage through failure: a failed transaction is included, so before the rule each of
    these put 1 MiB in a block for nobody's money."""
    async with session(ATTACKER_ADDRESS) as s:
        while not stop.is_set():
            junk = os.urandom(1024 * 1024)
            tx = submit_update(Keypair.generate(), CHAIN_ID, 0, os.urandom(32), 0, junk)
            try:
                answer = await call(s, url, "mps_sendTransaction", "0x" + tx.encode().hex())
                seen["accepted" if "result" in answer else str(answer["error"]["code"])] += 1
            except aiohttp.ClientError as exc:
                seen[type(exc).__name__] += 1
            await asyncio.sleep(0.5)


async def fetch(url: str, _: int, stop: asyncio.Event, seen: Counter[str]) -> None:
    data = os.urandom(1024 * 1024)
    async with session(ATTACKER_ADDRESS) as s:
        await call(s, url, "mps_sendTransaction", "0x" + put_blob(
            Keypair.generate(), CHAIN_ID, 0, data).encode().hex())  # fmt: skip
        h = "0x" + hashlib.sha256(data).hexdigest()
        batch = [rpc_body("mps_getBlob", [h], i) for i in range(100)]
        while not stop.is_set():
            try:
                async with s.post(url, json=batch) as resp:
                    body = await resp.read()
                    seen[f"http {resp.status}, {len(body) // 1024} KiB"] += 1
            except aiohttp.ClientError as exc:
                seen[type(exc).__name__] += 1
            await asyncio.sleep(2)


async def slowloris(_: str, port: int, stop: asyncio.Event, seen: Counter[str]) -> None:
    async def one() -> asyncio.StreamWriter | None:
        try:
            _r, w = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, local_addr=(SLOWLORIS_ADDRESS, 0)), 5
            )
        except (OSError, TimeoutError):
            seen["refused at connect"] += 1
            return None
        w.write(b"POST / HTTP/1.1\r\nHost: x\r\n")
        return w

    writers = [w for w in await asyncio.gather(*(one() for _ in range(200))) if w is not None]
    seen["opened"] += len(writers)
    while not stop.is_set():
        for w in list(writers):
            if w.is_closing() or w.transport.get_extra_info("socket") is None:
                writers.remove(w)
                seen["cut by the node"] += 1
                continue
            try:
                w.write(b"X")
                await asyncio.wait_for(w.drain(), 1)
            except (OSError, TimeoutError):
                writers.remove(w)
                seen["cut by the node"] += 1
        await asyncio.sleep(5)
    for w in writers:
        w.close()


async def ws(url: str, _: int, stop: asyncio.Event, seen: Counter[str]) -> None:
    async with session(ATTACKER_ADDRESS) as s:
        conns = []
        for c in range(5):
            try:
                w = await s.ws_connect(url + "ws")
            except aiohttp.ClientError as exc:
                seen[type(exc).__name__] += 1
                continue
            conns.append(w)
            for i in range(1000):
                await w.send_json(rpc_body("mps_subscribe", ["newHeads"], c * 1000 + i))
            seen["subscribe requests"] += 1000
        while not stop.is_set():  # read slowly: a slow consumer
            for w in conns:
                try:
                    msg = await asyncio.wait_for(w.receive(), 0.05)
                except TimeoutError:
                    continue
                if msg.type == aiohttp.WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    if "error" in data:
                        seen[f"code {data['error']['code']}"] += 1
                    elif "id" in data:
                        seen["subscribed"] += 1
                else:  # CLOSE, CLOSING, CLOSED, ERROR: the node ended it
                    seen[f"closed by the node ({msg.type.name})"] += 1
                    conns.remove(w)
                    break
            await asyncio.sleep(1)
        for w in conns:  # what the node did with the rest of the flood
            try:
                async with asyncio.timeout(2):
                    async for msg in w:
                        if msg.type == aiohttp.WSMsgType.TEXT and "error" in msg.data:
                            seen[f"code {json.loads(msg.data)['error']['code']}"] += 1
            except TimeoutError:
                seen["still open at the end"] += 1
            else:
                seen[f"closed by the node ({w.close_code})"] += 1
            await w.close()


async def deep(url: str, _: int, stop: asyncio.Event, seen: Counter[str]) -> None:
    body = ("[" * 10_000 + "]" * 10_000).encode()
    async with session(ATTACKER_ADDRESS) as s:
        while not stop.is_set():
            try:
                headers = {"Content-Type": "application/json"}
                async with s.post(url, data=body, headers=headers) as resp:
                    seen[await answer_kind(resp)] += 1
            except aiohttp.ClientError as exc:
                seen[type(exc).__name__] += 1
            await asyncio.sleep(1)


ATTACK_FNS: dict[str, Attack] = {
    "amplify": amplify,
    "pin": pin,
    "blobs": blobs,
    "fetch": fetch,
    "slowloris": slowloris,
    "ws": ws,
    "failing": failing,
    "deep": deep,
}


# -- one phase ------------------------------------------------------------------------------
def seal_times(log_path: Path) -> list[float]:
    times = []
    for line in log_path.read_text(errors="replace").splitlines():
        if '"block sealed"' not in line:
            continue
        try:
            times.append(float(json.loads(line)["ms"]))
        except (ValueError, KeyError):
            continue
    return times


async def run_phase(
    label: str, attacks: list[str], seconds: float, honest_n: int, funded: bool = False
) -> Phase:
    with tempfile.TemporaryDirectory(prefix="mps-soak-") as tmp:
        window = 600 if funded else 0  # a chain that funds its tasks (no L1 here: no tasks)
        node = NodeProcess(
            Path(tmp),
            chain_id=CHAIN_ID,
            log_format="json",
            block_time=0.5,
            funding_window_blocks=window,
        )
        node.start()
        try:
            stop = asyncio.Event()
            honest = Honest()
            seen: dict[str, Counter[str]] = {a: Counter() for a in attacks}
            tasks = [asyncio.create_task(honest_sender(node.url, stop, honest))
                     for _ in range(honest_n)]  # fmt: skip
            tasks.append(asyncio.create_task(honest_reader(node.url, stop, honest)))
            watcher = asyncio.create_task(watch_inclusion(node.url, stop, honest, grace=30))
            tasks += [
                asyncio.create_task(ATTACK_FNS[a](node.url, node.port, stop, seen[a]))
                for a in attacks
            ]
            for t in range(int(seconds)):
                await asyncio.sleep(1)
                if t % 10 == 9:
                    print(f"  {label}: {t + 1}/{int(seconds)} s, {len(honest.acked)} honest "
                          f"acknowledged", file=sys.stderr)  # fmt: skip
            stop.set()
            _, late = await asyncio.wait(tasks, timeout=30)
            for task in late:  # an attack still inside a call: it is over all the same
                task.cancel()
            await watcher
            rss = node.rss_high_water_mib()
        finally:
            node.stop()
        return Phase(label, honest, rss, seal_times(node.log_path), seen)


def print_table(phases: list[Phase]) -> None:
    print("| figure | " + " | ".join(p.label for p in phases) + " |")
    print("| --- |" + " ---: |" * len(phases))

    def row(name: str, fn: Callable[[Phase], str]) -> None:
        print(f"| {name} | " + " | ".join(fn(p) for p in phases) + " |")

    row("honest sends acknowledged", lambda p: f"{len(p.honest.acked):,}")
    row("honest refused", lambda p: str(dict(p.honest.refused)) if p.honest.refused else "0")
    row("**honest lost** (acknowledged, never included)", lambda p: f"**{p.honest.lost}**")
    row(
        "send latency p50 / p99 (ms)",
        lambda p: f"{pct(p.honest.send_ms, 0.5):.1f} / {pct(p.honest.send_ms, 0.99):.1f}",
    )
    row(
        "read latency p50 / p99 (ms)",
        lambda p: f"{pct(p.honest.read_ms, 0.5):.1f} / {pct(p.honest.read_ms, 0.99):.1f}",
    )
    row(
        "inclusion p50 / p99 (s)",
        lambda p: f"{pct(p.honest.included_s, 0.5):.2f} / {pct(p.honest.included_s, 0.99):.2f}",
    )
    row("RSS high-water (MiB)", lambda p: f"{p.rss_mib:.0f}")
    row("blocks sealed", lambda p: f"{len(p.seal_ms):,}")
    row("seal p50 / p99 / max (ms)", lambda p: (
        f"{pct(p.seal_ms, .5):.1f} / {pct(p.seal_ms, .99):.1f} / "
        f"{max(p.seal_ms, default=float('nan')):.1f}"))  # fmt: skip
    if len(phases) > 1 and phases[0].honest.send_ms and phases[1].honest.send_ms:
        ratio = pct(phases[1].honest.send_ms, 0.99) / pct(phases[0].honest.send_ms, 0.99)
        print(f"\nhonest send p99 under attack / alone: {ratio:.2f}x")
    for p in phases:
        for attack, seen in p.attacks.items():
            print(f"- {p.label}, {attack}: {dict(seen)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="per phase (default 60)")
    ap.add_argument("--quick", action="store_true", help="10 s per phase")
    ap.add_argument("--honest", type=int, default=8, help="honest sending clients (default 8)")
    ap.add_argument("--attacks", default="all", help="all, none, or a comma-separated list")
    ap.add_argument(
        "--funded",
        action="store_true",
        help="a chain that funds its tasks (blobs only for a task, within a quota); default: a "
        "development chain whose blobs are free",
    )
    args = ap.parse_args(argv)
    chosen = list(ATTACKS) if args.attacks == "all" else (
        [] if args.attacks == "none" else args.attacks.split(","))  # fmt: skip
    unknown = sorted(set(chosen) - set(ATTACKS))
    if unknown:
        ap.error(f"unknown attacks {unknown}; choose from {', '.join(ATTACKS)}")
    seconds = 10.0 if args.quick else args.seconds
    phases = [asyncio.run(run_phase("honest only", [], seconds, args.honest, args.funded))]
    if chosen:
        phases.append(
            asyncio.run(run_phase("under attack", chosen, seconds, args.honest, args.funded))
        )
    print_table(phases)
    return 0


if __name__ == "__main__":
    sys.exit(main())
