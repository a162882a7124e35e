"""Helpers shared by the subcommands: reading inputs, output directories, summaries."""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path

from samsvae_plus.atomic import atomic_write_text
from samsvae_plus.errors import InputError


def read_h5ad(path: str | os.PathLike, what: str = "--data"):
    """Read an h5ad file fully into memory, turning a missing or unreadable file into an InputError."""
    import anndata as ad  # here, so that building the parser stays light

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path} does not exist; pass the path of an .h5ad file")
    try:
        with warnings.catch_warnings():
            # anndata warns about duplicate names on read; registration reports them as an error.
            warnings.simplefilter("ignore", UserWarning)
            return ad.read_h5ad(path)
    except Exception as err:  # h5py and anndata raise many types for a bad file
        raise InputError(
            f"{what} {path} is not a readable h5ad file ({type(err).__name__}: {err})"
        ) from None


def check_output_dir(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an existing output directory unless ``overwrite``; checked before any work."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(
            f"--out {path} already exists; choose another directory or pass --overwrite"
        )
    if path.exists() and not path.is_dir():
        raise InputError(f"--out {path} exists and is not a directory")
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
