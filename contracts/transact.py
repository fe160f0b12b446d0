"""Call and transact with the L1 contracts from a local key, by raw signed transactions.

Everything here signs locally with an ``eth_account`` ``LocalAccount`` and sends
``eth_sendRawTransaction``, so it works the same on anvil, on web3's ``EthereumTesterProvider`` and
on a real L1 node (none of them needs to hold a key). A call that reverts raises
:class:`contracts.reverts.ContractRevert` carrying the decoded custom error
(``exc.error == "NotFinalized"``, ``exc.error_args == (3,)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import MethodUnavailable
from web3.types import BlockIdentifier, Nonce, TxParams, TxReceipt

from . import artifacts
from .reverts import REVERTS, ContractRevert, revert_from

#: What :func:`send` signs: a contract function call, or a deployment.
Sendable = ContractFunction | ContractConstructor


def call(fn: ContractFunction, block_identifier: BlockIdentifier = "latest") -> Any:
    """``fn.call()``, raising :class:`ContractRevert` (error decoded) when the view reverts."""
    try:
        return fn.call(block_identifier=block_identifier)
    except REVERTS as exc:
        raise revert_from(exc) from exc


def contract(w3: Web3, name: str, address: str) -> Contract:
    """A web3 contract object for the artifact ``name`` at ``address``."""
    return w3.eth.contract(address=to_checksum_address(address), abi=artifacts.load(name)[0])


def _estimate(fn: Sendable, params: TxParams) -> int:
    try:
        return int(fn.estimate_gas(dict(params), block_identifier="pending"))  # type: ignore[arg-type]
    except MethodUnavailable:  # eth-tester estimates on the pending block anyway
        return int(fn.estimate_gas(dict(params)))  # type: ignore[arg-type]


def send(
    w3: Web3,
    account: LocalAccount,
    fn: Sendable,
    value: int = 0,
    nonce: int | None = None,
    fees: Mapping[str, int] | None = None,
) -> HexBytes:
    """Estimate, sign and send ``fn``; return the transaction hash without waiting for it.

    An explicit ``nonce`` lets a caller put several transactions in one block.
    """
    me = account.address
    params: TxParams = {
        "from": me,
        "value": Web3.to_wei(value, "wei"),
        "nonce": Nonce(nonce) if nonce is not None else w3.eth.get_transaction_count(me, "pending"),
        "chainId": w3.eth.chain_id,
    }
    if fees:
        params.update(fees)  # type: ignore[typeddict-item]
    try:
        # estimated on the pending block, which is the one the transaction will run in: on
        # "latest", block.number is one lower and a timelock ending next block would fail here
        params["gas"] = _estimate(fn, params)
        tx = fn.build_transaction(params)
    except REVERTS as exc:
        raise revert_from(exc) from exc
    signed = account.sign_transaction(tx)  # type: ignore[arg-type]
    try:
        return w3.eth.send_raw_transaction(signed.raw_transaction)
    except REVERTS as exc:  # eth-tester executes at once and may raise here
        raise revert_from(exc) from exc


def wait(w3: Web3, account: LocalAccount, tx_hash: HexBytes, timeout: float = 120) -> TxReceipt:
    """The receipt of ``tx_hash``; a transaction that reverted once mined raises
    :class:`ContractRevert`, its reason recovered by replaying it on the block before."""
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout)
    if receipt["status"] != 1:
        # it passed estimation but reverted when mined (the state moved): replay it for the reason
        tx = w3.eth.get_transaction(tx_hash)
        replay: TxParams = {"from": account.address, "value": tx["value"], "data": tx["input"]}
        if tx.get("to"):
            replay["to"] = tx["to"]
        try:
            w3.eth.call(replay, receipt["blockNumber"] - 1)
        except REVERTS as exc:
            raise revert_from(exc) from exc
        raise ContractRevert("", (), b"", f"transaction {tx_hash.hex()} reverted")
    return receipt


def transact(
    w3: Web3,
    account: LocalAccount,
    fn: ContractFunction,
    value: int = 0,
    timeout: float = 120,
    fees: Mapping[str, int] | None = None,
) -> TxReceipt:
    """Sign and send ``fn`` (e.g. ``rollup.functions.challenge(3)``) from ``account``, wait for
    the receipt. Raises :class:`ContractRevert` (custom error decoded) if it reverts, at gas
    estimation or once mined. ``fees`` (EIP-1559 fields) override web3's defaults, so that a
    node can hold its fee cap.
    """
    return wait(w3, account, send(w3, account, fn, value, fees=fees), timeout)
