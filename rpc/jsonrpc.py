"""JSON-RPC 2.0 dispatch, independent of the transport: one envelope in, one out.

Follows the specification to the letter: batches (capped), notifications
(no ``id`` member: no response), ``id: null`` (answered), the standard codes
for envelope faults, and application codes from :class:`stf.errors.Code`.
Parameters may be positional or named; each method declares converters that
accept both JSON (``0x`` hex for bytes) and msgpack (raw bytes) forms.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from stf.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    Code,
    MPSError,
)

log = structlog.get_logger("mps.rpc")


class RPCError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_obj(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


class InvalidParams(RPCError):
    def __init__(self, message: str) -> None:
        super().__init__(INVALID_PARAMS, f"invalid params: {message}")


Handler = Callable[..., Awaitable[Any]]
Converter = Callable[[Any], Any]


@dataclass(frozen=True)
class Param:
    name: str
    convert: Converter
    required: bool = True
    default: Any = None


@dataclass(frozen=True)
class Method:
    name: str
    handler: Handler
    params: tuple[Param, ...]
    doc: str
    wants_context: bool


MAX_BATCH_RESPONSE = 25 * 1024 * 1024
"""Bytes a batch's answers may take (geth's cap): 100 calls for one 4 MiB blob answered 839 MB
of JSON and held gigabytes (issue 13). The rest of a batch past the cap gets RESPONSE_TOO_LARGE
and is not run."""


def approx_size(value: Any) -> int:
    """About how many bytes ``value`` takes as JSON (bytes as hex), without encoding it."""
    if isinstance(value, bytes | bytearray | memoryview):
        return 2 * len(value) + 4
    if isinstance(value, str):
        return len(value) + 2
    if isinstance(value, dict):
        return sum(approx_size(k) + approx_size(v) + 2 for k, v in value.items()) + 2
    if isinstance(value, list | tuple):
        return sum(approx_size(v) + 1 for v in value) + 2
    return 24


def _too_large(size: int) -> RPCError:
    return RPCError(
        int(Code.RESPONSE_TOO_LARGE),
        f"the batch's answers passed {MAX_BATCH_RESPONSE} bytes ({size} so far): "
        "this request was not answered; ask for fewer or smaller results per batch",
    )


class Dispatcher:
    def __init__(self, max_batch: int, observe: Callable[[str, float, int | None], None]) -> None:
        self.methods: dict[str, Method] = {}
        self.max_batch = max_batch
        self._observe = observe

    def add(self, name: str, handler: Handler, *params: Param) -> None:
        wants_context = "context" in inspect.signature(handler).parameters
        self.methods[name] = Method(
            name, handler, params, inspect.getdoc(handler) or "", wants_context
        )

    async def handle(self, payload: Any, context: Any = None) -> Any:
        """Answer a decoded request or batch; ``None`` means send nothing."""
        if isinstance(payload, list):
            if not payload:
                return _error(None, RPCError(INVALID_REQUEST, "invalid request: empty batch"))
            if len(payload) > self.max_batch:
                return _error(
                    None,
                    RPCError(
                        int(Code.BATCH_TOO_LARGE),
                        f"batch of {len(payload)} requests exceeds the limit of {self.max_batch}",
                    ),
                )
            out: list[dict[str, Any]] = []
            size = 0
            for p in payload:
                if size > MAX_BATCH_RESPONSE:  # the rest is not even run: its memory is not spent
                    if isinstance(p, dict) and "id" in p:  # a notification gets no answer
                        out.append(_error(p["id"], _too_large(size)))
                    continue
                r = await self._one(p, context)
                if r is None:
                    continue
                size += approx_size(r)
                out.append(r if size <= MAX_BATCH_RESPONSE else _error(r["id"], _too_large(size)))
            return out or None
        return await self._one(payload, context)

    async def _one(self, req: Any, context: Any) -> dict[str, Any] | None:
        if not isinstance(req, dict):
            return _error(None, RPCError(INVALID_REQUEST, "invalid request: not an object"))
        has_id = "id" in req
        rid = req.get("id")
        if has_id and not (
            rid is None or (isinstance(rid, str | int) and not isinstance(rid, bool))
        ):
            return _error(
                None,
                RPCError(INVALID_REQUEST, "invalid request: id must be a string, number or null"),
            )
        if req.get("jsonrpc") != "2.0":
            return _error(
                rid, RPCError(INVALID_REQUEST, 'invalid request: "jsonrpc" must be "2.0"')
            )
        name = req.get("method")
        if not isinstance(name, str):
            return _error(
                rid, RPCError(INVALID_REQUEST, "invalid request: method must be a string")
            )
        t0 = time.perf_counter()
        code: int | None = None
        try:
            result = await self._call(name, req.get("params"), context)
        except RPCError as exc:
            code = exc.code
            resp = _error(rid, exc)
        except MPSError as exc:
            code = int(exc.code)
            resp = _error(rid, RPCError(code, exc.message, {"name": exc.code.name}))
        except Exception:
            log.exception("rpc method failed", method=name)
            code = INTERNAL_ERROR
            resp = _error(rid, RPCError(INTERNAL_ERROR, "internal error"))
        else:
            resp = {"jsonrpc": "2.0", "id": rid, "result": result}
        self._observe(name if name in self.methods else "unknown", time.perf_counter() - t0, code)
        return resp if has_id else None

    async def _call(self, name: str, params: Any, context: Any) -> Any:
        method = self.methods.get(name)
        if method is None:
            raise RPCError(METHOD_NOT_FOUND, f"method not found: {name}")
        args = _bind(method, params)
        if method.wants_context:
            return await method.handler(*args, context=context)
        return await method.handler(*args)


def _bind(method: Method, params: Any) -> list[Any]:
    specs = method.params
    if params is None:
        params = []
    if isinstance(params, list):
        if len(params) > len(specs):
            raise InvalidParams(
                f"{method.name} takes at most {len(specs)} params, got {len(params)}"
            )
        raw = {spec.name: params[i] for i, spec in enumerate(specs) if i < len(params)}
    elif isinstance(params, dict):
        names = {s.name for s in specs}
        # msgpack maps may have keys of any type: sort their reprs, never the keys themselves
        unknown = sorted(repr(k) for k in params if not isinstance(k, str) or k not in names)
        if unknown:
            raise InvalidParams(f"unknown params [{', '.join(unknown)}] for {method.name}")
        raw = dict(params)
    else:
        raise InvalidParams("params must be an array or an object")
    args = []
    for spec in specs:
        if spec.name not in raw:
            if spec.required:
                raise InvalidParams(f"missing param {spec.name!r}")
            args.append(spec.default)
            continue
        try:
            args.append(spec.convert(raw[spec.name]))
        except (ValueError, TypeError) as exc:
            raise InvalidParams(f"{spec.name}: {exc}") from None
    return args


def _error(rid: Any, err: RPCError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": err.to_obj()}
