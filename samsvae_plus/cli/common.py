"""Helpers shared by the subcommands: reading inputs, output directories, summaries."""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path

from samsvae_plus._atomic import atomic_write_text
from samsvae_plus.errors import InputError


def read_h5ad(path: str | os.PathLike, what: str = "--data"):
    """Read an h5ad file fully into memory, turning a missing or unreadable file into an InputError."""
    import anndata as ad  # here, so that building the parser stays light

    path = check_input_file(path, what)
    try:
        with warnings.catch_warnings():
            # anndata warns about duplicate names on read; registration reports them as an error.
            warnings.simplefilter("ignore", UserWarning)
            return ad.read_h5ad(path)
    except Exception as err:  # h5py and anndata raise many types for a bad file
        raise InputError(
            f"{what} {path} is not a readable h5ad file ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); pass a file written by "
            "anndata's write_h5ad"
        ) from None


def check_input_file(
    path: str | os.PathLike, what: str = "--data", expected: str = "the path of an .h5ad file"
) -> Path:
    """Require an existing file, as an InputError naming the flag (and what to pass)
    otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path} does not exist or is not a file; pass {expected}")
    return path


def _check_can_create(path: Path, what: str) -> None:
    """Require that ``path`` can be created: its nearest existing ancestor is a writable
    directory. Checked up front, so that a bad ``--out`` fails before the work, not after."""
    parent = path.parent  # relative paths stay relative in the message
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{what} {path} is inside {parent}, which is a file; choose another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{what} {path} cannot be created: {parent} is not writable")


def check_output_dir(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an existing output directory unless ``overwrite``; checked before any work."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(
            f"--out {path} already exists; choose another directory or pass --overwrite"
        )
    if path.exists() and not path.is_dir():
        raise InputError(f"--out {path} exists and is not a directory")
    _check_can_create(path, "--out")
    return path


def check_output_file(path: str | os.PathLike, what: str = "--out") -> Path:
    """Require a path a file can be written to (replacing a file there); checked before any
    work."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} {path} is a directory; pass a file path")
    _check_can_create(path, what)
    return path


def add_output_args(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    parser.add_argument("--out", required=default is None, default=default, help="output directory")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def write_json(path: str | os.PathLike, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, default=float) + "\n")


def finish(command: str, summary: str) -> int:
    """Print the one-line summary every command ends with."""
    print(f"samsvae-plus {command}: {summary}")
    return 0
