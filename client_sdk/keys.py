"""ed25519 key pairs and key files: :mod:`mps_common.keyfile`, re-exported for SDK users."""

from __future__ import annotations

from mps_common.keyfile import KeyFileError, Keypair

__all__ = ["KeyFileError", "Keypair"]
