"""An L1 endpoint, the node's L1 accounts, and transactions that respect a fee cap."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from contracts.transact import contract, transact

GWEI = 10**9
PRIORITY_FEE = 1 * GWEI


class L1Error(RuntimeError):
    """The L1 endpoint is unusable for this node (wrong chain, no contracts, fee too high)."""


def connect(url: str, chain_id: int, timeout: float = 10.0) -> Web3:
    """A web3 connection whose chain id is checked once, up front."""
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}))
    try:
        got = int(w3.eth.chain_id)
    except Exception as exc:
        raise L1Error(f"cannot reach the L1 at {url}: {exc}") from None
    if chain_id and got != chain_id:
        raise L1Error(f"the L1 at {url} has chain id {got}, the config says {chain_id}")
    return w3


def load_account(path: Path) -> LocalAccount:
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise L1Error(f"cannot read L1 key file {path}: {exc}") from None
    acct: LocalAccount = Account.from_key(text)
    return acct


def save_account(path: Path, key_hex: str) -> None:
    """Write a private key readable by the owner only (like the node key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key_hex.removeprefix("0x") + "\n")


def bind_contract(w3: Web3, name: str, address: str) -> Contract:
    """A web3 contract for our artifact ``name`` at ``address``, which must hold code."""
    checksummed = Web3.to_checksum_address(address)
    if not w3.eth.get_code(checksummed):
        raise L1Error(f"no {name} contract at {address}: deploy first (mps-node deploy)")
    return contract(w3, name, checksummed)


@dataclass(frozen=True)
class Deployment:
    """The contracts of one MPS chain on its L1."""

    registry: Contract
    rollup: Contract
    slashing: Contract
    rewards: Contract | None
    inbox: Contract | None = None  # the ForcedInbox; None: nobody can force a transaction in

    @classmethod
    def at(
        cls,
        w3: Web3,
        registry: str,
        rollup: str,
        slashing: str,
        rewards: str = "",
        inbox: str = "",
    ) -> Deployment:
        def bind(name: str, address: str) -> Contract:
            return bind_contract(w3, name, address)

        return cls(
            bind("StakingRegistry", registry),
            bind("MPSRollup", rollup),
            bind("SlashingManager", slashing),
            bind("RewardManager", rewards) if rewards else None,
            bind("ForcedInbox", inbox) if inbox else None,
        )


def fee_fields(w3: Web3, max_fee_wei: int) -> dict[str, int]:
    """EIP-1559 fees: twice the base fee plus a tip, never above the cap."""
    base = int(w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
    if base + PRIORITY_FEE > max_fee_wei:
        raise L1Error(f"L1 base fee {base / GWEI:.1f} gwei is above the cap; waiting")
    return {
        "maxFeePerGas": min(2 * base + PRIORITY_FEE, max_fee_wei),
        "maxPriorityFeePerGas": PRIORITY_FEE,
    }


def build_signed(
    w3: Web3,
    account: LocalAccount,
    call: Any,
    nonce: int,
    max_fee_wei: int,
    value: int = 0,
) -> tuple[bytes, bytes]:
    """Sign a contract call; gas is estimated (a call that would revert raises here)."""
    tx = call.build_transaction(
        {
            "from": account.address,
            "nonce": nonce,
            "value": value,
            "chainId": int(w3.eth.chain_id),
            **fee_fields(w3, max_fee_wei),
        }
    )
    tx["gas"] = int(tx["gas"] * 5 // 4)
    signed = account.sign_transaction(tx)
    return bytes(signed.raw_transaction), bytes(signed.hash)


def send_and_wait(
    w3: Web3,
    account: LocalAccount,
    call: Any,
    max_fee_wei: int,
    value: int = 0,
    timeout: float = 60.0,
) -> Any:
    """Send one call from ``account`` within the fee cap and wait for its receipt.

    Raises :class:`L1Error` above the cap and :class:`contracts.reverts.ContractRevert`, with
    the contract's error decoded, if the call reverts (at estimation or once mined).
    """
    return transact(w3, account, call, value, timeout, fees=fee_fields(w3, max_fee_wei))
