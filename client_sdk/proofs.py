"""Check a node's state proofs locally: trust the root, not the node."""

from __future__ import annotations

from typing import Any

from mps_common.errors import ClientError
from mps_common.hexutil import as_bytes
from stf.smt import Proof, verify_proof


class ProofError(ClientError, ValueError):
    """The node's answer does not prove what it claims: a lying or broken node, never the caller."""


def _b(v: Any) -> bytes:
    try:
        return as_bytes(v, "proof field")
    except ValueError as exc:
        raise ProofError(str(exc)) from None


def checked_value(resp: dict[str, Any], root: bytes | None = None) -> bytes | None:
    """Verify an ``mps_getProof`` answer; return the proven value (None: proven absent).

    Pass ``root`` from a source you trust (an L1 commitment, a header you
    verified); without it the answer is checked against its own claimed root.
    """
    try:
        claimed = _b(resp["stateRoot"])
        p = resp["proof"]
        leaf = None if p["leaf"] is None else (_b(p["leaf"][0]), _b(p["leaf"][1]))
        proof = Proof(tuple(_b(s) for s in p["siblings"]), leaf)
        value = None if resp["value"] is None else _b(resp["value"])
        key = _b(resp["key"])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ProofError(f"malformed proof answer: {exc!r}") from None
    if root is not None and claimed != root:
        raise ProofError("the proof is against a different state root than the trusted one")
    if not verify_proof(claimed, key, value, proof):
        raise ProofError("state proof does not verify")
    return value
