"""The L1 side of a client or a requester: stake, unbond, fund a task, read batches, claim.

A thin layer over the contracts of ``contracts/`` (see docs/contracts.md). Every transaction is
signed locally with the configured key and waited for; a revert raises
:class:`contracts.reverts.ContractRevert` with the contract's custom error decoded
(``exc.error == "WrongStakeAmount"``, ``exc.error_args == (sent, required)``), also importable
as ``client_sdk.l1.ContractRevert``.

web3 is imported on first use, so ``import client_sdk`` stays fast.

>>> cfg = L1Config.from_devnet(Path("devnet"), "client3")  # doctest: +SKIP
>>> L1(cfg).status(Keypair.load("devnet/dev-clients/client3.key").public_key)  # doctest: +SKIP
'staked'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stf.stakes import l1_status_label

from .errors import SDKError

if TYPE_CHECKING:
    from web3.contract import Contract


__all__ = ["L1", "L1Config", "L1ConfigError", "load_addresses"]


class L1ConfigError(SDKError):
    """An L1 setting is missing or unreadable (key file, deployment file, contract address)."""


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise L1ConfigError(f"cannot read the {what} {path}: {exc.strerror}") from None


def load_addresses(path: Path) -> dict[str, str]:
    """Contract addresses from a deployment file: ``mps-node dev``'s ``deployment.json``
    (``{"addresses": {...}}``) or a plain ``{name: address}`` object."""
    try:
        data = json.loads(_read(path, "deployment file"))
    except json.JSONDecodeError as exc:
        raise L1ConfigError(f"deployment file {path} is not JSON: {exc}") from None
    addresses = data.get("addresses", data) if isinstance(data, dict) else None
    if not isinstance(addresses, dict) or not all(isinstance(v, str) for v in addresses.values()):
        raise L1ConfigError(f"deployment file {path} holds no {{name: address}} object")
    return {str(k): v for k, v in addresses.items()}


@dataclass(frozen=True)
class L1Config:
    """Where the L1 is, whose account signs, and the contract addresses (by contract name)."""

    rpc_url: str
    private_key: str = field(repr=False)  # hex, the client's or the requester's L1 account
    addresses: dict[str, str]

    @classmethod
    def from_devnet(cls, datadir: str | Path, account: str) -> L1Config:
        """The dev network's L1 as ``mps-node dev`` wrote it to ``<datadir>/l1/``: the endpoint,
        ``deployment.json``, and ``{account}.key`` (``client3``: the L1 account that staked dev
        client 3, whose ed25519 key is ``<datadir>/dev-clients/client3.key``; or ``admin``,
        ``sequencer``, ``aggregator``, ``verifier``)."""
        l1dir = Path(datadir) / "l1"
        return cls.from_files(
            _read(l1dir / "endpoint", "dev L1 endpoint file (is `mps-node dev` running?)"),
            l1dir / f"{account}.key",
            l1dir / "deployment.json",
        )

    @classmethod
    def from_files(cls, rpc_url: str, key_file: str | Path, deployment: str | Path) -> L1Config:
        """An endpoint, a file holding the hex private key, a deployment file."""
        key = _read(Path(key_file), "L1 key file")
        return cls(rpc_url, key, load_addresses(Path(deployment)))


class L1:
    """The contracts, seen from one account (``cfg.private_key``)."""

    def __init__(self, cfg: L1Config, timeout: float = 120.0) -> None:
        from eth_account import Account
        from web3 import Web3

        self.cfg = cfg
        self.timeout = timeout
        self.w3 = Web3(Web3.HTTPProvider(cfg.rpc_url, request_kwargs={"timeout": 30}))
        try:
            self.account = Account.from_key(cfg.private_key)
        except (ValueError, TypeError) as exc:
            raise L1ConfigError(f"the L1 private key is not a valid key: {exc}") from None
        self.address: str = self.account.address
        self._contracts: dict[str, Contract] = {}

    # -- plumbing ---------------------------------------------------------------------------
    def contract(self, name: str) -> Contract:
        """The web3 contract ``name`` (``"StakingRegistry"``, ``"MPSRollup"``...)."""
        c = self._contracts.get(name)
        if c is None:
            from contracts.transact import contract

            address = self.cfg.addresses.get(name)
            if not address:
                raise L1ConfigError(f"the L1 config has no address for {name}")
            c = self._contracts[name] = contract(self.w3, name, address)
        return c

    def _call(self, name: str, fn: str, *args: Any) -> Any:
        from contracts.transact import call

        return call(getattr(self.contract(name).functions, fn)(*args))

    def _transact(self, name: str, fn: str, *args: Any, value: int = 0) -> Any:
        from contracts.transact import transact

        f = getattr(self.contract(name).functions, fn)(*args)
        return transact(self.w3, self.account, f, value=value, timeout=self.timeout)

    # -- staking ----------------------------------------------------------------------------
    def stake(self, client_key: bytes, binding: bytes) -> None:
        """Stake exactly ``STAKE_AMOUNT`` for ``client_key``; this account is its staker for good
        (rewards are paid to it). ``binding``: the key's signature naming this account
        (:func:`stf.stakes.binding_message`), without which the rollup does not count it."""
        amount = int(self._call("StakingRegistry", "STAKE_AMOUNT"))
        self._transact("StakingRegistry", "stake", client_key, binding, value=amount)

    def unregister(self) -> None:
        """Start unbonding this account's stake (slashable until the rollup releases it)."""
        self._transact("StakingRegistry", "unregister")

    def withdraw(self, batch_index: int, siblings: list[bytes]) -> None:
        """Take the stake back, on the proof of the rollup's release under finalized batch
        ``batch_index`` (``NotReleased`` otherwise; :func:`client_sdk.release.stake_release`
        builds it)."""
        self._transact("StakingRegistry", "withdrawStake", batch_index, siblings)

    def key_of(self) -> bytes:
        """The client key this L1 account bound (32 zero bytes if none): the key its
        ``unregister`` and ``withdrawStake`` act on."""
        return bytes(self._call("StakingRegistry", "keyOf", self.address))

    def status(self, client_key: bytes) -> str:
        """``"none"``, ``"staked"``, ``"unbonding"``, ``"slashed"`` or ``"withdrawn"``."""
        return l1_status_label(int(self._call("StakingRegistry", "statusOf", client_key)))

    def unbond_block(self, client_key: bytes) -> int:
        """The L1 block of the key's latest ``unregister`` (the rollup's release must name it)."""
        return int(self._call("StakingRegistry", "unbondBlockOf", client_key))

    def block_number(self) -> int:
        return int(self.w3.eth.block_number)

    # -- censorship -------------------------------------------------------------------------
    def force_transaction(self, raw_tx: bytes) -> int:
        """Post a signed MPS transaction (``tx.encode()``) to the ForcedInbox, for when the
        sequencer will not take it; return the L1 block it landed in.

        The rollup must carry it within ``sequencing_window()`` L1 blocks (a batch that does
        not is fraud, and verifiers challenge it). It then applies as if the sequencer had
        included it (a failing call uses its nonce, as in a block), or, if it cannot apply at
        all (a used nonce, a bad signature), changes nothing: watch the sender's nonce
        (``mps_getNonce``) to see it land."""
        receipt = self._transact("ForcedInbox", "forceTx", raw_tx)
        return int(receipt["blockNumber"])

    def sequencing_window(self) -> int:
        """L1 blocks within which the rollup must carry an L1 event (ForcedInbox)."""
        return int(self._call("ForcedInbox", "SEQUENCING_WINDOW"))

    # -- tasks ------------------------------------------------------------------------------
    @property
    def address_bytes(self) -> bytes:
        """This account's address as the rollup names a task's funder (20 bytes)."""
        return bytes.fromhex(self.account.address[2:])

    def fund_task(self, task_id: bytes, deposit_wei: int) -> None:
        """Fund task id ``task_id`` from this account with ``deposit_wei``, paying
        ``BASE_FEE + deposit_wei`` (the BASE_FEE is the price of the task's slot)."""
        fee = int(self._call("RewardManager", "BASE_FEE"))
        self._transact("RewardManager", "fundTask", task_id, deposit_wei, value=fee + deposit_wei)

    def funding(self, task_id: bytes, funder: str | None = None) -> dict[str, Any]:
        """``{deposit, settled, reclaimed}`` of ``funder``'s (default: this account's) funding
        of ``task_id`` (deposit 0: none)."""
        who = funder or self.account.address
        deposit, settled, reclaimed = self._call("RewardManager", "funding", task_id, who)
        return {"deposit": int(deposit), "settled": bool(settled), "reclaimed": bool(reclaimed)}

    def reclaim(self, batch_index: int, task_id: bytes, bind_by: int, siblings: list[bytes]) -> int:
        """Take back this account's deposit for a funding the rollup never bound (the proof:
        its ``funding/`` leaf, unbound, in a finalized state at a height >= ``bind_by``)."""
        rc = self._transact("RewardManager", "reclaim", batch_index, task_id, bind_by, siblings)
        events = self.contract("RewardManager").events.FundingReclaimed().process_receipt(rc)
        return sum(int(e["args"]["amount"]) for e in events)

    def task(self, task_id: bytes) -> dict[str, Any]:
        """``{requester, deposit, settled, pool, totalCleanUpdates, root}`` of the task's
        settled funding (``requester``: its funder; zeros until settled)."""
        requester, deposit, settled, pool, total, root = self._call(
            "RewardManager", "task", task_id
        )
        return {
            "requester": requester,
            "deposit": int(deposit),
            "settled": bool(settled),
            "pool": int(pool),
            "totalCleanUpdates": int(total),
            "root": bytes(root),
        }

    def claimed(self, task_id: bytes, client_key: bytes) -> bool:
        return bool(self._call("RewardManager", "claimed", task_id, client_key))

    def claim(self, task_id: bytes, client_key: bytes, accepted: int, siblings: list[bytes]) -> int:
        """Claim ``client_key``'s share of a settled task (paid to its staker); return the wei
        paid."""
        rc = self._transact("RewardManager", "claim", task_id, client_key, accepted, siblings)
        events = self.contract("RewardManager").events.RewardClaimed().process_receipt(rc)
        return sum(int(e["args"]["amount"]) for e in events)

    def withdraw_refund(self, task_id: bytes) -> int:
        """The requester takes back what settlement left of its deposit; return the wei."""
        rc = self._transact("RewardManager", "withdrawRefund", task_id)
        events = self.contract("RewardManager").events.Refunded().process_receipt(rc)
        return sum(int(e["args"]["amount"]) for e in events)

    # -- batches ----------------------------------------------------------------------------
    def batch_count(self) -> int:
        return int(self._call("MPSRollup", "nextBatchIndex"))

    def batch(self, index: int) -> tuple[int, bytes, int]:
        """``(index, state root, last rollup block)`` of a live batch."""
        root, _, last, _, _ = self._call("MPSRollup", "batch", index)
        return index, bytes(root), int(last)

    def committed_batch(self) -> tuple[int, bytes, int] | None:
        """The newest committed batch (the rollup's safe head), or None before the first."""
        n = self.batch_count()
        return None if n == 0 else self.batch(n - 1)

    def finalized_batch(self) -> tuple[int, bytes, int] | None:
        """The newest finalized batch, or None. Finality goes in batch order, so this is a
        binary search over ``isFinalized``."""
        lo, hi = 0, self.batch_count()  # the answer is in [lo - 1, hi - 1]
        while lo < hi:
            mid = (lo + hi) // 2
            if self._call("MPSRollup", "isFinalized", mid):
                lo = mid + 1
            else:
                hi = mid
        return None if lo == 0 else self.batch(lo - 1)

    def find_batch(self, root: bytes) -> tuple[int, bytes, int] | None:
        """The newest live batch committing to state ``root`` (newest first), or None."""
        for i in range(self.batch_count() - 1, -1, -1):
            b = self.batch(i)
            if b[1] == root:
                return b
        return None

    # -- account ----------------------------------------------------------------------------
    def balance(self) -> int:
        """This account's balance in wei."""
        return int(self.w3.eth.get_balance(self.account.address))


def __getattr__(name: str) -> Any:
    if name == "ContractRevert":  # imported lazily: it brings web3 with it
        from contracts.reverts import ContractRevert

        return ContractRevert
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
