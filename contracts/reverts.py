"""Revert reasons of the L1 contracts, decoded into :class:`ContractRevert`.

A custom error is looked up in the ABIs of every artifact, not only the called contract's, since an
error can bubble up from a contract called in between (``SlashingManager.slash`` reverting with
``MPSRollup``'s ``NotFinalized``). Providers hand the revert data over in different shapes (web3's
``.data``, eth-tester's bytes literal in a message): :func:`revert_data` is the one place that
knows them.
"""

from __future__ import annotations

import ast
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError

from mps_common.errors import ClientError
from mps_common.hexutil import to_hex

from . import artifacts

try:  # with eth-tester (the tests' in-process EVM), reverts carry the data in its exception
    from eth_tester.exceptions import TransactionFailed as _TesterFailed  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover

    class _TesterFailed(Exception):  # type: ignore[no-redef]
        pass


#: The exceptions a provider raises for a reverted call or transaction.
REVERTS = (ContractCustomError, ContractPanicError, ContractLogicError, _TesterFailed)


class ContractRevert(ClientError, RuntimeError):
    """A transaction or call reverted; ``error`` and ``error_args`` hold the decoded reason.

    A :class:`mps_common.errors.ClientError`, so an SDK caller's one ``except ClientError``
    covers the L1 too; the node's services catch it by its own name.

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
            else f"revert data {to_hex(data)}"
            if data
            else "revert"
        )
        super().__init__(f"reverted: {shown}{f' ({detail})' if detail else ''}")


def _show(value: Any) -> str:
    return to_hex(value) if isinstance(value, bytes) else repr(value)


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


def revert_from(exc: BaseException) -> ContractRevert:
    """The :class:`ContractRevert` for a provider's exception (one of :data:`REVERTS`)."""
    data = revert_data(exc)
    return decode_revert(data, "" if data else str(exc)[:200])
