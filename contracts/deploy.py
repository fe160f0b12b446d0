"""Deploy the L1 contracts with raw signed transactions, and call them the same way.

Everything here signs locally with an ``eth_account`` ``LocalAccount`` and sends
``eth_sendRawTransaction``, so it works the same on anvil, on web3's ``EthereumTesterProvider`` and
on a real L1 node (none of them needs to hold a key). A call that reverts raises
:class:`ContractRevert` carrying the decoded custom error (``exc.error == "NotFinalized"``,
``exc.error_args == (3,)``), looked up in the ABIs of every artifact, since an error can bubble up
from a contract called in between.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    ContractPanicError,
    MethodUnavailable,
)
from web3.types import BlockIdentifier, Nonce, TxParams, TxReceipt

from . import artifacts

try:  # with eth-tester (the tests' in-process EVM), reverts carry the data in its exception
    from eth_tester.exceptions import TransactionFailed as _TesterFailed  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover

    class _TesterFailed(Exception):  # type: ignore[no-redef]
        pass


_REVERTS = (ContractCustomError, ContractPanicError, ContractLogicError, _TesterFailed)

ETHER = 10**18

#: Deployment order; the addresses come back under these names.
CONTRACTS = (
    "StakingRegistry",
    "MPSRollup",
    "SlashingManager",
    "SlashTreasury",
    "RewardManager",
    "RewardTreasury",
)


@dataclass
class DeployParams:
    """Constructor arguments of the L1 contracts. Defaults suit a dev network; amounts in wei,
    windows in L1 blocks (anvil's automine makes one block per transaction,
    ``Anvil(block_time=1)`` one a second).

    A production deployment would rather use a 7-day unbonding (50_400 blocks of 12 s), a
    challenge window of 1 to 7 days, and a challenge bond that deters frivolous challenges.
    """

    stake_amount: int = 1 * ETHER
    """Exact stake per client key (StakingRegistry.STAKE_AMOUNT)."""
    unbonding_blocks: int = 20
    """Blocks between unregister and withdrawStake; must exceed challenge_blocks so that evidence
    committed just before unregister can still finalize and slash."""
    base_fee: int = ETHER // 100
    """Flat fee per task, to the RewardTreasury (RewardManager.BASE_FEE)."""
    fee_per_epoch: int = ETHER // 1000
    """Fee per trained epoch, taken from the task deposit (RewardManager.FEE_PER_EPOCH)."""
    protocol_share_bps: int = 500
    """Part of the fee kept by the protocol, in basis points (5 %)."""
    challenge_blocks: int = 10
    """Challenge window of a batch (MPSRollup.CHALLENGE_BLOCKS)."""
    challenge_bond: int = ETHER // 10
    """Exact bond per challenge (MPSRollup.CHALLENGE_BOND)."""
    genesis_state_root: bytes = bytes(32)
    """The rollup genesis block's state root: the node passes its own."""
    sequencer: str | None = None
    """Address allowed to commit batches; None: the deploying account."""
    admin: str | None = None
    """Admin of every contract (challenge resolver, treasuries); None: the deploying account."""


class ContractRevert(RuntimeError):
    """A transaction or call reverted; ``error`` and ``error_args`` hold the decoded reason.

    ``error`` is the custom error's name (``"WrongStakeAmount"``), ``"Error"`` for a string reason,
    ``"Panic"`` for a panic code, or ``""`` when the revert carried no data it could decode.
    """

    def __init__(
        self, error: str, error_args: tuple[Any, ...], data: bytes, detail: str = ""
    ) -> None:
        self.error = error
        self.error_args = error_args
        self.data = data
        shown = (
            f"{error}({', '.join(_show(v) for v in error_args)})"
            if error
            else f"revert data 0x{data.hex()}"
            if data
            else "revert"
        )
        super().__init__(f"reverted: {shown}{f' ({detail})' if detail else ''}")


def _show(value: Any) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else repr(value)


_ErrorSpec = tuple[str, list[str]]
_errors: dict[bytes, _ErrorSpec] | None = None


def _error_table() -> dict[bytes, _ErrorSpec]:
    global _errors
    if _errors is None:
        table: dict[bytes, _ErrorSpec] = {
            keccak(text="Error(string)")[:4]: ("Error", ["string"]),
            keccak(text="Panic(uint256)")[:4]: ("Panic", ["uint256"]),
        }
        for name in artifacts.names():
            for item in artifacts.load(name)[0]:
                if item.get("type") == "error":
                    error, types = item["name"], [_abi_type(i) for i in item.get("inputs", [])]
                    table[keccak(text=f"{error}({','.join(types)})")[:4]] = (error, types)
        _errors = table
    return _errors


def _abi_type(param: dict[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in param["components"]) + ")" + kind[5:]
    return kind


def decode_revert(data: bytes | str | None, detail: str = "") -> ContractRevert:
    """Turn revert data (bytes or hex) into a :class:`ContractRevert` naming the custom error."""
    if isinstance(data, str):
        raw = bytes(HexBytes(data)) if data.startswith("0x") else b""
    else:
        raw = bytes(data or b"")
    spec = _error_table().get(raw[:4]) if len(raw) >= 4 else None
    if spec is None:
        return ContractRevert("", (), raw, detail)
    try:
        values = tuple(
            to_checksum_address(v) if kind == "address" else v
            for kind, v in zip(spec[1], abi_decode(spec[1], raw[4:]), strict=True)
        )
    except Exception:  # undecodable arguments still name the error
        values = ()
    return ContractRevert(spec[0], values, raw, detail)


def revert_data(exc: BaseException) -> bytes | str | None:
    """The revert data a provider attached to ``exc``: web3's ``.data`` (hex, from anvil or a
    node), or the bytes eth-tester's ``TransactionFailed`` carries down its ``__cause__`` chain."""
    seen: BaseException | None = exc
    while seen is not None:
        data = getattr(seen, "data", None)
        if isinstance(data, dict):  # some providers wrap it: {"data": "0x..."}
            data = data.get("data")
        if isinstance(data, str | bytes) and data:
            return data
        if seen.args and isinstance(seen.args[0], bytes):
            return seen.args[0]
        if seen.args and isinstance(seen.args[0], str):
            raw = _bytes_literal(seen.args[0])
            if raw:
                return raw
        seen = seen.__cause__ or seen.__context__
    return None


def _bytes_literal(message: str) -> bytes | None:
    """eth-tester reports a reverted eth_call as the text ``execution reverted: b'...'``."""
    for quote in ("b'", 'b"'):
        start = message.find(quote)
        if start >= 0:
            try:
                value = ast.literal_eval(message[start:])
            except (ValueError, SyntaxError):
                continue
            if isinstance(value, bytes):
                return value
    return None


def _revert_from(exc: BaseException) -> ContractRevert:
    data = revert_data(exc)
    return decode_revert(data, "" if data else str(exc)[:200])


def call(fn: ContractFunction, block_identifier: BlockIdentifier = "latest") -> Any:
    """``fn.call()``, raising :class:`ContractRevert` (error decoded) when the view reverts."""
    try:
        return fn.call(block_identifier=block_identifier)
    except _REVERTS as exc:
        raise _revert_from(exc) from exc


def contract(w3: Web3, name: str, address: str) -> Contract:
    """A web3 contract object for the artifact ``name`` at ``address``."""
    return w3.eth.contract(address=to_checksum_address(address), abi=artifacts.load(name)[0])


def _estimate(fn: ContractFunction | ContractConstructor, params: TxParams) -> int:
    try:
        return int(fn.estimate_gas(dict(params), block_identifier="pending"))  # type: ignore[arg-type]
    except MethodUnavailable:  # eth-tester estimates on the pending block anyway
        return int(fn.estimate_gas(dict(params)))  # type: ignore[arg-type]


def _send(
    w3: Web3,
    account: LocalAccount,
    fn: ContractFunction | ContractConstructor,
    value: int = 0,
    nonce: int | None = None,
    fees: Mapping[str, int] | None = None,
) -> HexBytes:
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
    except _REVERTS as exc:
        raise _revert_from(exc) from exc
    signed = account.sign_transaction(tx)  # type: ignore[arg-type]
    try:
        return w3.eth.send_raw_transaction(signed.raw_transaction)
    except _REVERTS as exc:  # eth-tester executes at once and may raise here
        raise _revert_from(exc) from exc


def _wait(w3: Web3, account: LocalAccount, tx_hash: HexBytes, timeout: float = 120) -> TxReceipt:
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout)
    if receipt["status"] != 1:
        # it passed estimation but reverted when mined (the state moved): replay it for the reason
        tx = w3.eth.get_transaction(tx_hash)
        call: TxParams = {"from": account.address, "value": tx["value"], "data": tx["input"]}
        if tx.get("to"):
            call["to"] = tx["to"]
        try:
            w3.eth.call(call, receipt["blockNumber"] - 1)
        except _REVERTS as exc:
            raise _revert_from(exc) from exc
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
    return _wait(w3, account, _send(w3, account, fn, value, fees=fees), timeout)


def deploy(w3: Web3, account: LocalAccount, name: str, *args: Any, nonce: int | None = None) -> str:
    """Deploy artifact ``name`` with constructor ``args``; return its checksummed address."""
    return _receipt_address(
        _wait(w3, account, _send(w3, account, _constructor(w3, name, args), nonce=nonce))
    )


def _constructor(w3: Web3, name: str, args: Sequence[Any]) -> ContractConstructor:
    abi, bytecode = artifacts.load(name)
    return w3.eth.contract(abi=abi, bytecode=bytecode).constructor(*args)


def _receipt_address(receipt: TxReceipt) -> str:
    address = receipt["contractAddress"]
    if address is None:
        raise ContractRevert("", (), b"", "deployment produced no contract")
    return to_checksum_address(address)


def deploy_all(
    w3: Web3, account: LocalAccount, params: DeployParams | None = None
) -> dict[str, str]:
    """Deploy and wire every L1 contract; return ``{name: address}`` for :data:`CONTRACTS`.

    The registry is deployed with the deploying account as admin so that it can be wired to the
    SlashingManager and the SlashTreasury, then handed to ``params.admin`` if that is another
    address. Transactions go in three waves (independent ones share a block when blocks are timed).
    """
    p = params or DeployParams()
    me = account.address
    admin = to_checksum_address(p.admin) if p.admin else me
    sequencer = to_checksum_address(p.sequencer) if p.sequencer else me
    if len(p.genesis_state_root) != 32:
        raise ValueError("genesis_state_root must be 32 bytes")

    def wave(calls: list[tuple[ContractFunction | ContractConstructor, int]]) -> list[TxReceipt]:
        nonce = w3.eth.get_transaction_count(me, "pending")
        hashes = [_send(w3, account, fn, value, nonce + k) for k, (fn, value) in enumerate(calls)]
        return [_wait(w3, account, h) for h in hashes]

    first = wave(
        [
            (_constructor(w3, "StakingRegistry", [p.stake_amount, p.unbonding_blocks, me]), 0),
            (
                _constructor(
                    w3,
                    "MPSRollup",
                    [sequencer, p.challenge_blocks, p.challenge_bond, p.genesis_state_root, admin],
                ),
                0,
            ),
            (_constructor(w3, "SlashTreasury", [admin]), 0),
            (_constructor(w3, "RewardTreasury", [admin]), 0),
        ]
    )
    registry, rollup, slash_treasury, reward_treasury = (_receipt_address(r) for r in first)
    second = wave(
        [
            (_constructor(w3, "SlashingManager", [registry, rollup]), 0),
            (
                _constructor(
                    w3,
                    "RewardManager",
                    [
                        registry,
                        rollup,
                        reward_treasury,
                        p.base_fee,
                        p.fee_per_epoch,
                        p.protocol_share_bps,
                        admin,
                    ],
                ),
                0,
            ),
        ]
    )
    slashing_manager, reward_manager = (_receipt_address(r) for r in second)
    reg = contract(w3, "StakingRegistry", registry)
    wiring: list[tuple[ContractFunction | ContractConstructor, int]] = [
        (reg.functions.setSlasher(slashing_manager), 0),
        (reg.functions.setSlashTreasury(slash_treasury), 0),
    ]
    if admin != me:
        wiring.append((reg.functions.transferAdmin(admin), 0))
    wave(wiring)
    return {
        "StakingRegistry": registry,
        "MPSRollup": rollup,
        "SlashingManager": slashing_manager,
        "SlashTreasury": slash_treasury,
        "RewardManager": reward_manager,
        "RewardTreasury": reward_treasury,
    }
