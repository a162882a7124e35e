"""Shared plumbing of the experiment scripts: tables and run records."""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import samsvae_plus
from samsvae_plus.atomic import atomic_write_text


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
    """``table.csv``, ``table.md``, ``runs.csv`` and ``run.json`` (versions, args, wall time)."""
    import torch

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
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


def write_seed_summary(
    args, results: list[dict], metrics: list[str], name: str, meta: dict, started: float
) -> Path:
    """Per-seed ``results`` (each with its ``split``) -> a mean/sd table of ``metrics``, with
    the splits, seeds and smoke flag of ``args`` saved in the run record; printed and
    written to ``args.out`` by :func:`write_outputs`."""
    runs = pd.DataFrame([{k: v for k, v in r.items() if k != "split"} for r in results])
    table = pd.DataFrame({"mean": runs[metrics].mean(), "sd": runs[metrics].std(ddof=1)})
    table.index.name = name
    record = {
        **meta,
        "smoke": args.smoke,
        "seeds": args.seeds,
        "splits": [r["split"] for r in results],
    }
    written = write_outputs(args.out, table, runs, record, started)
    print(json.dumps(runs.to_dict(orient="records"), default=float))
    print(table.round(3).to_string())
    print(f"wrote {written}")
    return written
