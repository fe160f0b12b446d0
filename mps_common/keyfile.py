"""ed25519 key pairs and key files.

A key file holds the 32-byte seed in hex, written with mode 0600 so that no
other user can read it; loading refuses a file that others can read.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from nacl.signing import SigningKey

from .errors import ClientError, InvalidArgument


class KeyFileError(ClientError, OSError):
    """The key file is missing, malformed or readable by others (an SDK error, and an OSError)."""


@dataclass(frozen=True)
class Keypair:
    signing_key: SigningKey

    @classmethod
    def generate(cls) -> Keypair:
        return cls(SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Keypair:
        if len(seed) != 32:
            raise InvalidArgument("an ed25519 seed is 32 bytes")
        return cls(SigningKey(seed))

    @property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def seed(self) -> bytes:
        return bytes(self.signing_key)

    def sign(self, message: bytes) -> bytes:
        return bytes(self.signing_key.sign(message).signature)

    def save(self, path: str | Path, overwrite: bool = False) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            raise KeyFileError(f"key file {path} already exists; not overwriting it") from None
        with os.fdopen(fd, "w") as f:
            f.write(self.seed.hex() + "\n")
        os.chmod(path, 0o600)

    @classmethod
    def load(cls, path: str | Path) -> Keypair:
        path = Path(path)
        try:
            mode = path.stat().st_mode
            text = path.read_bytes().decode("ascii").strip()
        except OSError as exc:
            raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise KeyFileError(f"key file {path} does not hold a 32-byte hex seed") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(f"key file {path} is accessible by other users; chmod 600 it")
        try:
            return cls.from_seed(bytes.fromhex(text))  # bare hex: the file format, no 0x
        except ValueError:
            raise KeyFileError(f"key file {path} does not hold a 32-byte hex seed") from None
