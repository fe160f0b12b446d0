"""The federation's clients: a ``Member`` per client, and gathering the staked ones.

A dev client slashed by an earlier demo run cannot stake again with its key, so each run takes
the clients still ``staked`` on the L1 and stakes fresh replacements for the rest (kept in
``<devnet>/demo-clients/`` for the next run).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from client_sdk.client import MPSClient
from client_sdk.keys import Keypair
from client_sdk.l1 import L1, L1Config

from .attacks import N_CLIENTS
from .report import log

REPLACEMENT_FUNDS_WEI = 2 * 10**18


@dataclass
class Member:
    """A client of the federation, its role, and what the run learned about it (scores,
    flags and verdict per epoch, its L1 status, its reward)."""

    name: str
    role: str
    mps: MPSClient
    index: int  # position in the federation: its data part, its minibatch stream
    slashable: bool = False  # a provable offence: its stake is slashed on the L1
    barred: bool = False  # too many strikes: out of the task, its stake untouched
    strikes: int = 0
    reason_names: list[str] = field(default_factory=list)
    slash_epoch: int | None = None
    barred_epoch: int | None = None
    lost: str = ""  # why it stopped submitting otherwise (e.g. its stake went away)
    missed: str = ""  # why its update of the current epoch did not go in
    scores: list[int | None] = field(default_factory=list)
    flags: list[int] = field(default_factory=list)
    trust: list[float | None] = field(default_factory=list)  # the reference's, per epoch
    l1_status: str = ""
    reward_wei: int | None = None
    reward_note: str = ""

    @property
    def out(self) -> bool:
        """Slashable or barred: the chain takes no more updates from it in the task."""
        return self.slashable or self.barred

    @property
    def out_epoch(self) -> int | None:
        return self.slash_epoch if self.slashable else self.barred_epoch

    @property
    def key(self) -> bytes:
        return self.mps.require_key().public_key

    @property
    def honest(self) -> bool:
        return self.role == "honest"

    @property
    def label(self) -> str:
        return f"{self.name} {self.role}"


def _transfer(admin: L1, to: str, wei: int, nonce: int) -> bytes:
    """Send ``wei`` from the admin's L1 account (explicit nonces: the transfers go out at once)."""
    w3 = admin.w3
    tx = {
        "to": to,
        "value": wei,
        "gas": 21_000,
        "gasPrice": int(w3.eth.gas_price),
        "nonce": nonce,
        "chainId": int(w3.eth.chain_id),
    }
    signed = admin.account.sign_transaction(tx)
    return bytes(w3.eth.send_raw_transaction(signed.raw_transaction))


def gather_clients(devnet: Path, rpc: str, want: int) -> list[tuple[str, MPSClient]]:
    """``want`` clients staked on the L1 and in the rollup: the dev clients first, then the
    demo's earlier replacements, then fresh replacements for the rest."""
    l1dir = devnet / "l1"
    store = devnet / "demo-clients"
    out: list[tuple[str, MPSClient]] = []
    skipped: list[str] = []
    candidates: list[tuple[str, Keypair, L1Config]] = []
    for i in range(N_CLIENTS):
        p = devnet / "dev-clients" / f"client{i}.key"
        if p.exists():
            candidates.append(
                (f"client{i}", Keypair.load(p), L1Config.from_devnet(devnet, f"client{i}"))
            )
    if store.exists():
        for p in sorted(store.glob("r*.key"), key=lambda q: int(q.stem[1:])):
            cfg = L1Config.from_files(
                (l1dir / "endpoint").read_text().strip(),
                p.with_suffix(".l1key"),
                l1dir / "deployment.json",
            )
            candidates.append((p.stem, Keypair.load(p), cfg))
    for name, key, cfg in candidates:
        if len(out) == want:
            break
        mps = MPSClient(rpc, key, cfg)
        status = mps.l1.status(key.public_key)
        if status == "staked":
            out.append((name, mps))
        else:
            skipped.append(f"{name} ({status})")
    if skipped:
        log(f"  not staked on the L1, left out: {', '.join(skipped)}")
    with ThreadPoolExecutor(max(1, len(out))) as pool:  # the rollup follows the L1 closely
        list(pool.map(lambda nm: nm[1].wait_for_stake(60.0), out))
    missing = want - len(out)
    if missing <= 0:
        return out
    return out + _stake_replacements(devnet, rpc, missing)


def _stake_replacements(devnet: Path, rpc: str, missing: int) -> list[tuple[str, MPSClient]]:
    """``missing`` fresh keys staked from fresh L1 accounts the admin funds (an L1 account
    binds one key), saved as ``<devnet>/demo-clients/r<N>.key`` and ``.l1key``."""
    from eth_account import Account

    l1dir = devnet / "l1"
    store = devnet / "demo-clients"
    admin = L1(L1Config.from_devnet(devnet, "admin"))
    store.mkdir(parents=True, exist_ok=True)
    used = [int(q.stem[1:]) for q in store.glob("r*.key")]
    first = max(used, default=-1) + 1
    log(f"  staking {missing} replacement clients (fresh keys, L1 accounts funded by the admin)")
    nonce = int(admin.w3.eth.get_transaction_count(admin.account.address, "pending"))
    fresh: list[tuple[str, MPSClient]] = []
    hashes = []
    for k in range(missing):
        name = f"r{first + k}"
        acct = Account.create()
        key = Keypair.generate()
        key.save(store / f"{name}.key")
        l1key = store / f"{name}.l1key"
        l1key.write_text(acct.key.hex() + "\n")
        l1key.chmod(0o600)
        cfg = L1Config.from_files(admin.cfg.rpc_url, l1key, l1dir / "deployment.json")
        fresh.append((name, MPSClient(rpc, key, cfg)))
        hashes.append(_transfer(admin, acct.address, REPLACEMENT_FUNDS_WEI, nonce + k))
    for h in hashes:
        admin.w3.eth.wait_for_transaction_receipt(h, timeout=60)  # type: ignore[arg-type]
    with ThreadPoolExecutor(len(fresh)) as pool:
        list(pool.map(lambda nm: nm[1].stake(), fresh))
        list(pool.map(lambda nm: nm[1].wait_for_stake(60.0), fresh))
    return fresh
