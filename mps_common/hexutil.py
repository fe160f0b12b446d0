"""The one ``0x`` hex form of bytes used on every wire and in every config file of the project.

JSON-RPC answers, TOML configs, deployment files and the CLIs all carry bytes as ``0x``-prefixed
lowercase hex; msgpack carries raw bytes. Keeping the parsing here means a malformed value gets
the same clear error wherever it comes from.
"""

from __future__ import annotations

from typing import Any


def to_hex(value: bytes) -> str:
    """``b"\\x01\\xab"`` -> ``"0x01ab"``."""
    return "0x" + value.hex()


def from_hex(text: str, what: str = "value", *, prefix_optional: bool = False) -> bytes:
    """Parse ``0x`` hex; raise ValueError naming ``what`` on anything else.

    ``prefix_optional`` accepts bare hex too, for files written by hand (key files, configs).
    """
    if not isinstance(text, str):
        raise ValueError(f"{what}: expected 0x-prefixed hex, got {type(text).__name__}")
    if text.startswith("0x"):
        body = text[2:]
    elif prefix_optional:
        body = text
    else:
        raise ValueError(f"{what}: expected 0x-prefixed hex, got {text!r:.40}")
    try:
        return bytes.fromhex(body)
    except ValueError:
        raise ValueError(f"{what}: not valid hex: {text!r:.40}") from None


def as_bytes(value: Any, what: str = "value") -> bytes:
    """A bytes field of an RPC answer or parameter: raw bytes (msgpack) or ``0x`` hex (JSON)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return from_hex(value, what)
    raise ValueError(f"{what}: expected bytes or 0x hex, got {value!r:.40}")


def hex_fields(value: Any) -> Any:
    """``value`` with every bytes inside (dicts, lists, tuples) turned into ``0x`` hex, for JSON."""
    if isinstance(value, bytes):
        return to_hex(value)
    if isinstance(value, dict):
        return {k: hex_fields(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [hex_fields(v) for v in value]
    return value
