"""Saving and loading model state: tensors that cannot execute code, metadata as JSON.

A saved model is a directory with ``params.pt`` (a ``state_dict`` of plain tensors, read
back with ``torch.load(weights_only=True)``, which refuses pickled code) and
``model.json`` (class, configuration, registry, package version, training summary). The
directory is written to a temporary sibling and renamed into place, so it is never seen
half-written.
"""

from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path

import torch

from samsvae_plus._atomic import atomic_directory, atomic_write_bytes
from samsvae_plus._version import __version__
from samsvae_plus.errors import InputError

PARAMS_FILE = "params.pt"
METADATA_FILE = "model.json"


def tensor_bytes(state: dict[str, torch.Tensor]) -> bytes:
    """A state dict serialised by ``torch.save``, with every tensor moved to the CPU."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state.items()}, buffer)
    return buffer.getvalue()


def read_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a tensor file without executing code; refuse anything that is not plain tensors."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise InputError(
            f"{path} is not a plain tensor checkpoint and was not loaded (it may carry code): "
            f"{str(err).splitlines()[0]}"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(
            f"{path} does not hold a dict of tensors; it is not a samsvae_plus checkpoint"
        )
    return state


def write_model_files(
    directory: str | os.PathLike, state: dict[str, torch.Tensor], metadata: dict
) -> None:
    """Write the model files into an existing directory (each file atomically)."""
    directory = Path(directory)
    metadata = {**metadata, "version": __version__}
    atomic_write_bytes(directory / PARAMS_FILE, tensor_bytes(state))
    atomic_write_bytes(directory / METADATA_FILE, json.dumps(metadata, indent=1).encode())


def save_model_dir(
    path: str | os.PathLike,
    state: dict[str, torch.Tensor],
    metadata: dict,
    *,
    overwrite: bool = True,
) -> Path:
    """Write a model directory atomically: it appears complete or not at all."""
    with atomic_directory(path, overwrite=overwrite) as tmp:
        write_model_files(tmp, state, metadata)
    return Path(path)


def check_version(saved: str) -> None:
    """Refuse a model saved by a package version whose major.minor differs from ours."""

    def major_minor(version: str) -> tuple[str, ...]:
        return tuple(version.split(".")[:2])

    if major_minor(saved) != major_minor(__version__):
        raise InputError(
            f"the model was saved by samsvae_plus {saved} and this is {__version__}; "
            f"load it with samsvae_plus {'.'.join(major_minor(saved))}.x or retrain it"
        )


def read_json(path: Path) -> dict:
    """A metadata file of a save or checkpoint; a file that is not JSON is reported as
    corrupt, not raised as a decoding error."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is not valid JSON ({err}); the file is corrupt") from None


def load_model_dir(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a model directory written by :func:`save_model_dir`: ``(state, metadata)``."""
    path = Path(path)
    metadata_path = path / METADATA_FILE
    if not metadata_path.is_file():
        raise InputError(
            f"{path} is not a saved model (no {METADATA_FILE}); pass the directory model.save wrote"
        )
    metadata = read_json(metadata_path)
    check_version(str(metadata.get("version", "unknown")))
    return read_tensors(path / PARAMS_FILE), metadata
