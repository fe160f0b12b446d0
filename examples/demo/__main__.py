"""``python -m examples.demo``: see :mod:`examples.demo.cli`."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
