"""Load the compiled contracts committed in ``contracts/build/`` (``python -m contracts.build``)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

BUILD_DIR = Path(__file__).resolve().parent / "build"

ABI = list[dict[str, Any]]


@functools.cache
def load(name: str) -> tuple[ABI, str]:
    """``(abi, bytecode)`` of contract ``name`` (e.g. ``"MPSRollup"``), bytecode as ``0x`` hex.

    Cached: callers must not mutate the returned ABI.
    """
    path = BUILD_DIR / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} not found: run `python -m contracts.build`") from None
    return data["abi"], data["bytecode"]


def names() -> list[str]:
    """Every contract with an artifact, sorted."""
    return sorted(p.stem for p in BUILD_DIR.glob("*.json"))
