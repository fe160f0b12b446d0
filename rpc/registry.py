"""Declarative binding of namespace classes to the dispatcher.

A method class marks each RPC method with :func:`rpc` and the ``Param`` list it takes; the
Python name is the wire name (ruff's N802 is off for that), so the name, the parameters and the
docstring that feeds the docs sit together, and :func:`bind` adds them in definition order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from .jsonrpc import Dispatcher, Handler, Param

H = TypeVar("H", bound=Handler)
_PARAMS = "__rpc_params__"


def rpc(*params: Param) -> Callable[[H], H]:
    """Mark a coroutine method as the RPC method of its name, taking ``params``."""

    def mark(fn: H) -> H:
        setattr(fn, _PARAMS, params)
        return fn

    return mark


def bind(d: Dispatcher, *namespaces: object) -> None:
    """Add every marked method of each namespace object, bound to that object."""
    for ns in namespaces:
        for name, attr in vars(type(ns)).items():
            params: tuple[Param, ...] | None = getattr(attr, _PARAMS, None)
            if params is not None:
                d.add(name, getattr(ns, name), *params)
