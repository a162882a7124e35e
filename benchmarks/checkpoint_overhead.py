"""What resumable checkpoints cost: training time with and without them, side by side.

    python benchmarks/checkpoint_overhead.py [--epochs 40] [--every 50] [--repeats 2]

Trains SAMS-VAE with the former demo's model and training settings (``_former_demo.py``)\non the demo's simulation, for
``--epochs`` epochs, alternating runs without checkpoints and with a checkpoint every
``--every`` steps (the default of ``train`` is 500, so this is a pessimistic rate), and
reports the ratio of the best wall times. It also checks that checkpointing leaves the
trained parameters bitwise unchanged. Writes ``benchmarks/results/checkpoint_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import _former_demo as former_demo
import torch

import samsvae_plus as sp
from samsvae_plus._atomic import atomic_write_text

RESULT = Path(__file__).resolve().parent / "results" / "checkpoint_overhead.json"


def train_once(adata, epochs: int, checkpoint_every: int | None) -> tuple[float, dict, int]:
    model = sp.SAMSVAE(adata, **former_demo.MODEL)
    options = {**former_demo.TRAINING, "max_epochs": epochs, "dense_epochs": 2 * epochs // 5}
    with tempfile.TemporaryDirectory() as directory:
        checkpointing = (
            {}
            if checkpoint_every is None
            else {"checkpoint_dir": directory, "checkpoint_every": checkpoint_every}
        )
        start = time.perf_counter()
        history = model.train(**options, seed=0, progress=False, **checkpointing)
        elapsed = time.perf_counter() - start
    return elapsed, model.module.state_dict(), history.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(2)
    adata = sp.datasets.simulate(seed=0)
    sp.setup_anndata(adata, "condition", "control", context_key="cell_type")
    times: dict[str, list[float]] = {"plain": [], "checkpointed": []}
    states = {}
    for _ in range(args.repeats):
        for name, every in (("plain", None), ("checkpointed", args.every)):
            elapsed, states[name], steps = train_once(adata, args.epochs, every)
            times[name].append(elapsed)
    identical = all(torch.equal(v, states["checkpointed"][k]) for k, v in states["plain"].items())
    ratio = min(times["checkpointed"]) / min(times["plain"])
    record = {
        "command": f"python benchmarks/checkpoint_overhead.py --epochs {args.epochs} "
        f"--every {args.every} --repeats {args.repeats}",
        "cells": adata.n_obs,
        "steps": steps,
        "step_checkpoints": steps // args.every,  # best-validation ones come on top
        "wall_s": times,
        "checkpointed_over_plain": ratio,
        "parameters_identical": identical,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
    }
    atomic_write_text(RESULT, json.dumps(record, indent=1) + "\n")
    print(f"{'run':14} {'best wall s':>11}")
    for name, values in times.items():
        print(f"{name:14} {min(values):11.2f}")
    print(f"checkpointed / plain = {ratio:.3f}; parameters identical: {identical}")


if __name__ == "__main__":
    main()
