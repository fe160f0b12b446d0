"""The installed package's version, for ``--version`` and the node's logs and metrics."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("mps-chain")
except PackageNotFoundError:  # run from a source tree that was never installed
    VERSION = "0+unknown"
