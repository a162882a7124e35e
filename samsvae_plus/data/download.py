"""Downloads of the registry's public files into a user cache, with pooch.

The cache is ``$SAMSVAE_PLUS_CACHE``, else ``$XDG_CACHE_HOME/samsvae_plus``, else
``~/.cache/samsvae_plus``. Its layout is that of a data directory (each file at its
registry ``path``), so a cache can also serve as ``$SAMSVAE_PLUS_DATA``.

A cached file is checked against its known hash before every use and downloaded again when
it does not match. Files whose source publishes no checksum are pinned on first download:
their sha256 is written to ``<file>.sha256`` beside them and logged, and from then on the
file (and any new download of it) must match that pin.

pooch is an optional dependency (``pip install "samsvae-plus[data]"``): only a download
needs it, and a file already in the cache or in a data directory is read without it.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from samsvae_plus._atomic import atomic_write_text
from samsvae_plus.data.checksums import file_digest, file_matches
from samsvae_plus.data.remote_files import RemoteFile, remote_file
from samsvae_plus.errors import InputError

__all__ = ["CACHE_ENV_VAR", "cache_dir", "download"]

CACHE_ENV_VAR = "SAMSVAE_PLUS_CACHE"
INSTALL_HINT = 'pip install "samsvae-plus[data]"'

logger = logging.getLogger(__name__)


def cache_dir() -> Path:
    """The download cache: ``$SAMSVAE_PLUS_CACHE``, else ``$XDG_CACHE_HOME/samsvae_plus``,
    else ``~/.cache/samsvae_plus``. It need not exist yet."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "samsvae_plus"


def _pin_path(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _expected_hash(entry: RemoteFile, target: Path) -> str | None:
    if entry.known_hash is not None:
        return entry.known_hash
    pin = _pin_path(target)
    return f"sha256:{pin.read_text().split()[0]}" if pin.is_file() else None


def _pin(entry: RemoteFile, target: Path) -> None:
    """Record the sha256 of a file whose source publishes no checksum."""
    digest = file_digest(target, "sha256")
    atomic_write_text(_pin_path(target), f"{digest}  {target.name}\n")
    logger.warning(
        "%s has no published checksum; pinned its sha256 %s in %s (delete that file to accept "
        "a new version)",
        entry.path,
        digest,
        _pin_path(target),
    )


def _require_pooch(entry: RemoteFile):
    try:
        import pooch
    except ImportError:
        raise InputError(
            f"downloading {entry.path} needs pooch: {INSTALL_HINT} (or put the file in a data "
            "directory named by SAMSVAE_PLUS_DATA)"
        ) from None
    return pooch


def _first_line(err: Exception) -> str:
    return str(err).splitlines()[0] if str(err) else ""


def download(
    name: str | RemoteFile,
    *,
    cache: str | os.PathLike | None = None,
    progress: bool | None = None,
) -> Path:
    """Path of a registry file in the cache, downloading it first where needed.

    Parameters
    ----------
    name
        A key of :data:`samsvae_plus.data.remote_files.REMOTE_FILES` (such as
        ``"norman2019"`` or ``"go_basic"``), or a :class:`RemoteFile`.
    cache
        Cache directory; defaults to :func:`cache_dir`.
    progress
        Show a progress bar; by default only when stderr is a terminal.

    Returns
    -------
    Path
        The file, checked against its known or pinned hash.

    Raises
    ------
    InputError
        If pooch is missing and a download is needed, the download fails, or the
        downloaded bytes do not match the checksum (the download is then deleted).
    """
    entry = name if isinstance(name, RemoteFile) else remote_file(name)
    target = (Path(cache).expanduser() if cache is not None else cache_dir()) / entry.path
    expected = _expected_hash(entry, target)
    if target.is_file() and (expected is None or file_matches(target, expected)):
        if expected is None:
            _pin(entry, target)
        return target
    pooch = _require_pooch(entry)
    logger.info("downloading %s (%s) from %s", entry.name, entry.description, entry.url)
    try:
        pooch.retrieve(
            entry.url,
            known_hash=expected,
            fname=target.name,
            path=target.parent,
            progressbar=sys.stderr.isatty() if progress is None else progress,
        )
    except ValueError as err:
        if "hash" not in str(err):
            raise
        changed = (
            "the file on the server has changed"
            if entry.known_hash is not None
            else f"the file on the server has changed (delete {_pin_path(target)} to accept it)"
        )
        raise InputError(
            f"the download of {entry.path} from {entry.url} does not match its checksum "
            f"{expected} and was deleted; try again, and if it fails again {changed}"
        ) from None
    except OSError as err:  # requests' errors are OSErrors too
        raise InputError(
            f"could not download {entry.path} from {entry.url} ({type(err).__name__}: {_first_line(err)}); "
            f"check the connection, or put the file at <SAMSVAE_PLUS_DATA>/{entry.path}"
        ) from None
    if expected is None:
        _pin(entry, target)
    return target
