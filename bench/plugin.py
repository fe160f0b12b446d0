"""Load a researcher's own function from a Python file (``--attack-file``, ``--split-file``)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any


def load_function(path: str, option: str, name: str, signature: str) -> Callable[..., Any]:
    """``name`` from the file at ``path``; exit with a message naming ``option`` if it is not
    there or not callable (``signature`` says what was expected)."""
    spec = importlib.util.spec_from_file_location(f"user_{name}", Path(path))
    if spec is None or spec.loader is None:
        raise SystemExit(f"{option} {path}: cannot load")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    fn = getattr(mod, name, None)
    if not callable(fn):
        raise SystemExit(f"{option} {path}: defines no {signature}")
    return fn  # type: ignore[no-any-return]
