"""``python -m client_sdk.demo``: see :mod:`client_sdk.demo.cli`."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
