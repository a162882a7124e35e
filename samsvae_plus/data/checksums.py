"""File checksums in pooch's notation (``"md5:<hex>"``, ``"sha256:<hex>"``, or bare hex for
sha256), computed once per file version."""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

__all__ = ["file_digest", "file_matches", "split_hash"]


def split_hash(known_hash: str) -> tuple[str, str]:
    """``(algorithm, lower-case hex digest)`` of a hash written as pooch writes it."""
    algorithm, _, digest = known_hash.rpartition(":")
    return (algorithm or "sha256").lower(), digest.lower()


@lru_cache(maxsize=64)
def _digest(path: Path, algorithm: str, size: int, mtime_ns: int) -> str:
    # size and mtime are part of the cache key so that a replaced file is hashed again.
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of the file at ``path``; cached until the file's size or mtime changes."""
    path = Path(path)
    stat = path.stat()
    return _digest(path, algorithm, stat.st_size, stat.st_mtime_ns)


def file_matches(path: str | os.PathLike, known_hash: str) -> bool:
    """Whether the file at ``path`` has the checksum ``known_hash``."""
    algorithm, digest = split_hash(known_hash)
    return file_digest(path, algorithm) == digest
