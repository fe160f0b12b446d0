"""Parameters several methods share, so that a name and its default are spelled once."""

from __future__ import annotations

from .codec import to_block_tag, to_bool, to_hash
from .jsonrpc import Param

BLOCK = Param("block", to_block_tag)
AT_BLOCK = Param("block", to_block_tag, required=False, default="latest")
FULL = Param("full", to_bool, required=False, default=False)
HASH = Param("hash", to_hash)
TASK = Param("task", to_hash)
