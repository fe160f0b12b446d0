"""Transaction types: import a module here to register its type."""

from . import blob, fl, l1_deposit, record
from .base import BY_NAME, REGISTRY, TxType, lookup, register

__all__ = [
    "BY_NAME",
    "REGISTRY",
    "TxType",
    "blob",
    "fl",
    "l1_deposit",
    "lookup",
    "record",
    "register",
]
