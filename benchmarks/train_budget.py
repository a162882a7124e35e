"""Wall time of the paper's training budget (150,000 steps) with ``model.train``, end to end.

    python benchmarks/train_budget.py [--device cuda] [--epochs 5 | --full] [--guide mean_field]
                                      [--compile-kernels] [--smoke] [--out PATH]

On the Replogle-sized simulation of ``train_speed`` (118,641 cells x 1,187 genes, 722
perturbations), trains SAMS-VAE (K = 100, batch 512, 5 particles) with ``model.train``
as a user would: the default loader (``"auto"``: the cells resident on a CUDA device),
validation every epoch, no early stopping. ``--epochs`` epochs are timed after one warm-up
epoch and the step rate is extrapolated to 150,000 steps; ``--full`` trains the whole
budget instead. Reports steps/s, the (extrapolated) time for 150k steps and, on CUDA, the
peak GPU memory (``torch.cuda.max_memory_allocated``). Writes
``benchmarks/results/train_budget[_cuda][_compiled].json`` and prints a table last.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch
from _results import result_path
from train_speed import REPLOGLE, SMOKE

import samsvae_plus as sp
from samsvae_plus import __version__
from samsvae_plus._atomic import atomic_write_text

PAPER_STEPS = 150_000


def timed_training(model, epochs: int, args) -> tuple[float, int]:
    """Wall seconds and optimizer steps of ``epochs`` epochs of ``model.train``."""
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    history = model.train(
        max_epochs=epochs,
        dense_epochs=0,
        batch_size=args.batch_size,
        n_particles=args.particles,
        device=args.device,
        early_stopping_patience=None,
        compile_kernels=args.compile_kernels,
        progress=args.full,
        seed=0,
    )
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, history.steps


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs (after one warm-up)")
    parser.add_argument("--full", action="store_true", help="train all 150,000 steps")
    parser.add_argument("--guide", default="mean_field")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--particles", type=int, default=5)
    parser.add_argument("--latent-dim", type=int, default=100)
    parser.add_argument("--compile-kernels", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="tiny data, two epochs")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs, args.batch_size, args.latent_dim = 1, 32, 6
    torch.set_num_threads(2)
    simulation = SMOKE if args.smoke else REPLOGLE
    adata = sp.datasets.simulate(**simulation)
    sp.setup_anndata(adata, "condition", "control", context_key="cell_type")
    model = sp.SAMSVAE(adata, latent_dim=args.latent_dim, guide=args.guide)

    warmup_s, warmup_steps = timed_training(model, 1, args)  # compiles, allocates, caches
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    steps_per_epoch = warmup_steps
    epochs = math.ceil(PAPER_STEPS / steps_per_epoch) if args.full else args.epochs
    seconds, steps = timed_training(model, epochs, args)
    steps_per_s = steps / seconds
    cuda = args.device.startswith("cuda")
    record = {
        "benchmark": "train_budget",
        "command": "python benchmarks/train_budget.py " + " ".join(sys.argv[1:] or argv or []),
        "smoke": args.smoke,
        "device": args.device,
        "gpu": torch.cuda.get_device_name() if cuda else None,
        "data": {"arguments": simulation, "cells": adata.n_obs, "genes": adata.n_vars},
        "settings": {
            "guide": args.guide,
            "latent_dim": args.latent_dim,
            "batch_size": args.batch_size,
            "particles": args.particles,
            "compile_kernels": args.compile_kernels,
            "loader": "auto",
        },
        "warmup_epoch_s": warmup_s,
        "timed_epochs": epochs,
        "timed_steps": steps,
        "timed_s": seconds,
        "steps_per_s": steps_per_s,
        "cells_per_s": steps_per_s * args.batch_size,
        "paper_steps": PAPER_STEPS,
        "paper_budget_minutes": PAPER_STEPS / steps_per_s / 60,
        "paper_budget_measured": args.full,
        "gpu_max_memory_allocated_gb": torch.cuda.max_memory_allocated() / 1e9 if cuda else None,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "versions": {"torch": torch.__version__, "samsvae_plus": __version__},
    }
    variant = "_compiled" if args.compile_kernels else ""
    out = args.out or result_path("train_budget", args.device, variant)
    atomic_write_text(out, json.dumps(record, indent=1) + "\n")
    how = "measured" if args.full else "extrapolated"
    print(f"{'figure':36} {'value':>10}")
    print(f"{'steps/s (model.train, end to end)':36} {steps_per_s:10.2f}")
    print(f"{'150k steps, minutes (' + how + ')':36} {record['paper_budget_minutes']:10.1f}")
    if cuda:
        print(f"{'peak GPU memory (GB)':36} {record['gpu_max_memory_allocated_gb']:10.2f}")
    return record


if __name__ == "__main__":
    main()
