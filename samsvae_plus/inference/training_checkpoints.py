"""Resumable training: checkpoints that let a killed run continue bit for bit.

A checkpoint directory holds ``checkpoint.json`` and the one tensor file it names. The
tensor file (``state-*.pt``, read back with ``torch.load(weights_only=True)``, which
refuses pickled code) holds the parameters, the best and last-good snapshots, Adam's
moments and torch's generator states. The JSON holds everything else: where each training
phase stands (epoch, batches done, history), Python's, NumPy's and the loader's generator
states, Adam's settings, and a fingerprint of the run. The tensor file is written first and
the JSON, replaced atomically, commits it, so a kill at any moment leaves the previous
checkpoint whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from samsvae_plus._atomic import atomic_write_bytes, atomic_write_text
from samsvae_plus._version import __version__
from samsvae_plus.errors import InputError
from samsvae_plus.inference.model_files import (
    check_version,
    read_json,
    read_tensors,
    tensor_bytes,
)

CHECKPOINT_FILE = "checkpoint.json"
FORMAT = 1
# The run may change these on resume, e.g. a lower learning rate after a divergence; the
# result is then no longer the uninterrupted run's, by the user's choice.
ADJUSTABLE = frozenset({"lr", "grad_clip", "early_stopping_patience", "progress"})


def digest(value: Any) -> str:
    """A short, stable digest of a JSON-serialisable value (a registry, a split)."""
    text = json.dumps(value, sort_keys=True, default=lambda v: np.asarray(v).tolist())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class TrainingCheckpoints:
    """Where and how often training writes resumable checkpoints.

    Parameters
    ----------
    directory
        Holds the latest checkpoint; created when the first one is written.
    every_steps
        Optimizer steps between checkpoints; one is also written at every best
        validation ELBO and at the end of each training phase.
    fingerprint
        Identifies the run (model, data, split, settings). Resuming from a checkpoint of a
        different run is refused with the differences named; keys in ``ADJUSTABLE`` may
        change.
    """

    def __init__(
        self, directory: str | os.PathLike, *, every_steps: int = 500, fingerprint: dict
    ) -> None:
        if every_steps < 1:
            raise InputError(f"checkpoint_every must be at least 1 step, got {every_steps}")
        self.directory = Path(directory)
        self.every_steps = int(every_steps)
        # Round-trip through JSON so tuples and lists compare equal after a restart.
        self.fingerprint = json.loads(json.dumps(fingerprint))
        self._record: dict | None = None

    # ------------------------------------------------------------------ reading
    def exists(self) -> bool:
        return (self.directory / CHECKPOINT_FILE).is_file()

    def open(self) -> None:
        """Read the committed checkpoint for resuming, refusing one of another run."""
        path = self.directory / CHECKPOINT_FILE
        if not path.is_file():
            self._record = None
            return
        record = read_json(path)
        if record.get("format") != FORMAT:
            raise InputError(
                f"{path} has checkpoint format {record.get('format')!r}, not {FORMAT}; "
                "start afresh with another checkpoint directory"
            )
        check_version(str(record.get("version", "unknown")))
        saved = record.get("fingerprint", {})
        differences = [
            f"{key}: {saved.get(key)!r} there, {value!r} here"
            for key, value in self.fingerprint.items()
            if key not in ADJUSTABLE and saved.get(key) != value
        ]
        if differences:
            raise InputError(
                f"the checkpoint in {self.directory} belongs to another run "
                f"({'; '.join(differences)}); pass the original arguments, or another "
                "checkpoint directory to start afresh"
            )
        self._record = record

    @property
    def step(self) -> int | None:
        """Optimizer steps of the committed checkpoint's phase, or None without one."""
        if self._record is None:
            return None
        return self._record["phases"][self._record["phase"]]["history"]["steps"]

    def finished_phase(self, phase: str) -> dict | None:
        """The saved loop state of ``phase`` if a later phase has started since it finished."""
        if self._record is None or self._record["phase"] == phase:
            return None
        return self._record["phases"].get(phase)

    def restore(
        self, phase: str, pair: nn.Module, optimizer: torch.optim.Optimizer
    ) -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]] | None:
        """Load the checkpoint of ``phase`` into ``pair``, ``optimizer`` and the generators.

        Returns ``(loop_state, best_state, last_good_state)``, or None when the committed
        checkpoint is not of this phase (nothing is changed then).
        """
        record = self._record
        if record is None or record["phase"] != phase:
            return None
        tensors = read_tensors(self.directory / record["tensors"])
        pair.load_state_dict(_prefixed(tensors, "module."))
        _restore_optimizer(optimizer, _prefixed(tensors, "optimizer."), record["optimizer"])
        _restore_rng(_prefixed(tensors, "rng."), record["rng"])
        return (
            record["phases"][phase],
            _prefixed(tensors, "best."),
            _prefixed(tensors, "last_good."),
        )

    # ------------------------------------------------------------------ writing
    def due(self, step: int) -> bool:
        return step % self.every_steps == 0

    def write(
        self,
        phase: str,
        loop_state: dict,
        pair: nn.Module,
        optimizer: torch.optim.Optimizer,
        best_state: dict[str, torch.Tensor],
        last_good: dict[str, torch.Tensor],
    ) -> None:
        """Commit a checkpoint of ``phase`` standing at ``loop_state``."""
        optimizer_tensors, optimizer_settings = _optimizer_state(optimizer)
        rng_tensors, rng_settings = _rng_state()
        tensors = {
            **_with_prefix(pair.state_dict(), "module."),
            **_with_prefix(best_state, "best."),
            **_with_prefix(last_good, "last_good."),
            **_with_prefix(optimizer_tensors, "optimizer."),
            **_with_prefix(rng_tensors, "rng."),
        }
        phases = dict(self._record["phases"]) if self._record is not None else {}
        phases[phase] = loop_state
        name = f"state-{phase}-{uuid.uuid4().hex[:12]}.pt"
        record = {
            "format": FORMAT,
            "version": __version__,
            "fingerprint": self.fingerprint,
            "phase": phase,
            "phases": phases,
            "tensors": name,
            "optimizer": optimizer_settings,
            "rng": rng_settings,
        }
        atomic_write_bytes(self.directory / name, tensor_bytes(tensors))
        atomic_write_text(self.directory / CHECKPOINT_FILE, json.dumps(record, indent=1))
        self._record = record
        # Only after the commit may older tensor files go.
        for old in self.directory.glob("state-*.pt"):
            if old.name != name:
                old.unlink(missing_ok=True)


def _with_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + key: value for key, value in state.items()}


def _prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}


def _optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer's state into tensors (moments, steps) and JSON (settings)."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            target = tensors if isinstance(value, torch.Tensor) else scalars
            target[f"{index}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], settings: dict
) -> None:
    # The learning rates of this run win over the saved ones (see ADJUSTABLE).
    current_lrs = [group["lr"] for group in optimizer.param_groups]
    state: dict[int, dict] = {}
    for key, value in [*tensors.items(), *settings["scalars"].items()]:
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    groups = [
        {key: tuple(value) if key == "betas" else value for key, value in group.items()}
        for group in settings["param_groups"]
    ]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    for group, lr in zip(optimizer.param_groups, current_lrs, strict=True):
        group["lr"] = lr


def _rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    """The states of every generator Pyro and the loop draw from: torch's (CPU and CUDA),
    Python's and NumPy's global ones."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for device, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{device}"] = state
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    settings = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(position), int(has_gauss), float(cached)],
    }
    return tensors, settings


def _restore_rng(tensors: dict[str, torch.Tensor], settings: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = sorted(
        (int(key.split(".")[1]), value) for key, value in tensors.items() if key.startswith("cuda.")
    )
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([value for _, value in cuda])
    version, internal, gauss = settings["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = settings["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
