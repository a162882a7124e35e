"""Shared plumbing of the experiment scripts: configs, tables and run records."""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

import samsvae_plus
from samsvae_plus._atomic import atomic_write_text

CONFIGS = Path(__file__).resolve().parent / "configs"
CONFIG_VERSION = 1


def deep_merge(base: dict, override: dict) -> dict:
    """``base`` with ``override`` merged in, nested mappings merged key by key (a smoke
    override names only what it shrinks)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_config(name: str, smoke: bool = False, script: str | None = None) -> dict:
    """``configs/NAME.yaml`` with its ``smoke:`` overrides merged in when ``smoke``.

    A config names the script that runs it (``script:``, by default NAME itself): several
    configs may share one script, each a design of its own (``model_family`` is T1's
    design on one larger simulation). With ``script`` given, a config of another script is
    an error, since its keys would be misread. The ``full_data`` section (the paper's data
    sets, which cannot be downloaded here), the ``smoke`` section and ``script`` are
    dropped from what a script sees; they stay in the file.
    """
    import yaml  # here, so that scripts without a config do not need it

    path = CONFIGS / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"no config {path}")
    config = yaml.safe_load(path.read_text())
    if config.get("version") != CONFIG_VERSION:
        raise ValueError(f"{path} has version {config.get('version')}, expected {CONFIG_VERSION}")
    owner = config.pop("script", name)
    if script is not None and owner != script:
        raise ValueError(f"{path} is a config of {owner}.py, not of {script}.py")
    smoke_overrides = config.pop("smoke", {}) or {}
    config.pop("full_data", None)
    return deep_merge(config, smoke_overrides) if smoke else config


def table_args(
    name: str,
    doc: str,
    *,
    rows_only: bool = False,
    options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> tuple[argparse.Namespace, dict]:
    """The command line every experiment script shares, and its config: ``--config``
    (default NAME, the script's own; another config of this script runs another design),
    ``--out`` (default ``figures/CONFIG``), ``--seeds`` (default the config's),
    ``--smoke``, ``--device``; ``--rows-only`` for a script that keeps each seed's rows in
    ``--out`` (``rows_only``), which ``samsvae-plus reproduce`` then runs one seed at a
    time; and whatever ``options(parser)`` adds.

    Also sets the process up as every experiment runs: torch threads
    (:func:`configure_torch`) and warnings off, since a log should hold its progress and
    results only."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--config", default=name, help="configs/CONFIG.yaml (default: %(default)s)")
    parser.add_argument("--out", default=None, help="output folder (default: figures/CONFIG)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--smoke", action="store_true", help="tiny data and budget, for tests")
    parser.add_argument("--device", default="auto", help="torch device of the training")
    if rows_only:
        parser.add_argument(
            "--rows-only",
            action="store_true",
            help="compute and keep the rows of --seeds, write no table (seeds run side by "
            "side; a later run with every seed gathers them)",
        )
    if options is not None:
        options(parser)
    args = parser.parse_args()
    try:
        config = load_config(args.config, args.smoke, script=name)
    except ValueError as err:
        parser.error(str(err))
    args.out = args.out or f"figures/{args.config}"
    args.seeds = args.seeds if args.seeds is not None else list(config["seeds"])
    configure_torch()
    warnings.filterwarnings("ignore")
    return args, config


def seed_summary(runs: pd.DataFrame, by: list[str], metrics: list[str]) -> pd.DataFrame:
    """Mean and sd over seeds of every metric, one row per ``by`` group (in first-seen
    order), as ``METRIC mean`` / ``METRIC sd`` columns; the index joins ``by`` with
    `` / ``."""
    grouped = runs.groupby(by, sort=False)[metrics]
    table = grouped.mean().add_suffix(" mean").join(grouped.std(ddof=1).add_suffix(" sd"))
    table = table[[f"{m} {s}" for m in metrics for s in ("mean", "sd")]]
    table.index = [" / ".join(map(str, key)) if len(by) > 1 else str(key) for key in table.index]
    table.index.name = " / ".join(by)
    return table


def each_seed(config: dict, seeds, run) -> tuple[list[dict], list[dict]]:
    """``run(data, spec, seed)`` for every data set of ``config`` and every seed; it
    returns that seed's rows and split records, gathered here in order."""
    rows, splits = [], []
    for data, spec in config["datasets"].items():
        for seed in seeds:
            seed_rows, seed_splits = run(data, spec, seed)
            rows += seed_rows
            splits += seed_splits
    return rows, splits


def training_for(config: dict, spec: dict) -> dict:
    """The training settings of one data set: the config's, with the epochs scaled by the
    data set's ``epoch_scale`` (default 1). A data set with several times the cells takes
    as many more gradient steps per epoch, so it needs fewer epochs; the scale keeps the
    smoke budget's ratio too."""
    scale = spec.get("epoch_scale", 1)
    training = dict(config["training"])
    if "max_epochs" in training:
        training["max_epochs"] = max(1, round(training["max_epochs"] * scale))
    if "dense_epochs" in training:  # the sparse phase keeps at least one epoch
        dense = round(training["dense_epochs"] * scale)
        training["dense_epochs"] = min(dense, training.get("max_epochs", dense + 1) - 1)
    return training


def cache_folder(out: str | Path, settings: dict, seed: int) -> Path:
    """``OUT/cache/DIGEST``: rows are only reused under the same settings and seed, so the
    folder is named by them (not by the data sets chosen, whose rows are files of their
    own)."""
    import hashlib

    settings = {k: v for k, v in settings.items() if k not in ("data", "seeds")} | {"seed": seed}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    folder = Path(out) / "cache" / digest
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def split_record(split, **extra) -> dict:
    """A split as saved beside a table: its name, seed, index arrays and ``extra`` labels
    (held-out conditions, kept fractions, further cell indices), arrays as lists."""
    extra = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in extra.items()}
    return {**split.to_dict(), **extra}


def save_figure(fig, out: str | Path, stem: str) -> list[Path]:
    """``stem.png`` and ``stem.pdf`` in ``out``; closes ``fig``."""
    import matplotlib.pyplot as plt

    paths = [Path(out) / f"{stem}.{suffix}" for suffix in ("png", "pdf")]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return paths


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub markdown table of ``frame`` (index as the first column)."""

    def cell(value) -> str:
        if isinstance(value, (float, np.floating)):
            return f"{value:.{digits}f}"
        return str(value).replace("|", "\\|")  # a bare pipe would split the cell

    header = [frame.index.name or "", *map(str, frame.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in zip(frame.index, frame.to_numpy(), strict=True):
        lines.append("| " + " | ".join(map(cell, [index, *row])) + " |")
    return "\n".join(lines) + "\n"


def configure_torch() -> None:
    """Threads from ``SAMSVAE_THREADS`` (default 2, the CI machine's cores), so that
    experiments run side by side do not oversubscribe the CPU."""
    import os

    import torch

    torch.set_num_threads(int(os.environ.get("SAMSVAE_THREADS", "2")))


def write_outputs(
    out: str | Path, table: pd.DataFrame, runs: pd.DataFrame, meta: dict, started: float
) -> Path:
    """``table.csv``, ``table.md``, ``runs.csv`` and ``run.json`` (versions, args, wall time).

    A ``splits`` list in ``meta`` is written whole to ``splits.json`` (the index arrays a
    reader needs to retrace each number); ``run.json`` keeps each split's labels and sizes
    only, so that it stays readable for data sets of many cells.
    """
    import torch

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if "splits" in meta:
        atomic_write_text(out / "splits.json", json.dumps(meta["splits"], default=str) + "\n")
        meta = {**meta, "splits": [_split_summary(s) for s in meta["splits"]]}
    atomic_write_text(out / "table.csv", table.to_csv())
    atomic_write_text(out / "table.md", markdown_table(table))
    atomic_write_text(out / "runs.csv", runs.to_csv(index=False))
    record = {
        **meta,
        "command": " ".join(sys.argv),
        "wall_time_s": time.perf_counter() - started,
        "versions": {
            "samsvae_plus": samsvae_plus.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "device": "cpu" if not torch.cuda.is_available() else torch.cuda.get_device_name(0),
    }
    atomic_write_text(out / "run.json", json.dumps(record, indent=1, default=str) + "\n")
    return out


def _split_summary(split: dict) -> dict:
    parts = ("train", "validation", "test")
    return {k: v for k, v in split.items() if k not in parts} | {
        f"n_{k}": len(split[k]) for k in parts if k in split
    }
