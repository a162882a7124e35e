"""Training speed of SAMS-VAE: Pyro's ELBO against the same ELBO in plain PyTorch.

    python benchmarks/train_speed.py [--steps 40] [--warmup 5] [--device cpu|cuda] [--smoke]
                                     [--out PATH]

On a Replogle-sized simulation (118,641 cells x 1,187 genes, 722 single-gene
perturbations, drawn by ``sp.datasets.simulate``), builds SAMS-VAE with K = 100 for each
guide and times optimizer steps (Adam with the training loop's parameter groups, batch
512, 5 vectorized particles, 2 CPU threads) of two losses of the same modules:

- ``pyro``: :func:`~samsvae_plus.inference.svi.make_loss` (``Trace_ELBO``), as training
  uses it, with Pyro's validation off as in ``train_svi``;
- ``plain``: :func:`~samsvae_plus.inference.plain_elbo.plain_negative_elbo`, the same ELBO
  written in plain PyTorch, with the same draws.

Steps alternate pyro/plain (and plain/pyro on every other round) after a warm-up, each pair
on the same batch; a step is the loss, ``zero_grad``, ``backward`` and ``optimizer.step``.
Batches are densified before timing. Before timing, the two losses are checked to agree
under one seed. Writes ``benchmarks/results/train_speed.json`` (``pyro_over_plain``: the
mean-field ratio of median step times) and prints a table last.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyro
import torch
from _results import result_path

import samsvae_plus as sp
from samsvae_plus import __version__
from samsvae_plus._atomic import atomic_write_text
from samsvae_plus.data.checked import check_cells
from samsvae_plus.data.encode import encode
from samsvae_plus.data.loaders import make_batch
from samsvae_plus.inference.plain_elbo import plain_negative_elbo
from samsvae_plus.inference.svi import make_loss, parameter_groups

GUIDES = ("mean_field", "correlated_basal", "correlated")
# Replogle et al. 2022, K562 essential screen, as SAMS-VAE's paper uses it.
REPLOGLE = dict(
    n_perturbations=722,
    n_contexts=1,
    n_genes=1187,
    latent_dim=20,
    n_combinations=0,
    cells_per_condition=160,
    n_control_cells=118_641 - 722 * 160,
    ate_cells=10,
    seed=0,
)
SMOKE = dict(
    n_perturbations=8,
    n_contexts=1,
    n_genes=40,
    latent_dim=4,
    n_combinations=0,
    cells_per_condition=20,
    n_control_cells=60,
    ate_cells=10,
    seed=0,
)


def time_guide(adata, guide: str, args) -> dict:
    """Median step times of both losses for one guide, and their agreement."""
    torch.manual_seed(0)
    model = sp.SAMSVAE(adata, latent_dim=args.latent_dim, guide=guide)
    pair = model.module.to(args.device)
    data = encode(check_cells(adata, model.registry))
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(4):
        rows = np.sort(rng.choice(data.n_cells, size=args.batch_size, replace=False))
        batches.append(make_batch(data, rows, rows, args.device))
    n_cells = data.n_cells
    pyro_loss = make_loss(pair, args.particles)
    losses = {
        "pyro": lambda batch: pyro_loss(batch, n_cells),
        "plain": lambda batch: plain_negative_elbo(pair, batch, n_cells, args.particles),
    }
    optimizer = torch.optim.Adam(parameter_groups(pair, 3e-4, 1.0))

    values = {}
    for name, loss in losses.items():
        torch.manual_seed(1)
        values[name] = float(loss(batches[0]).detach())
    agreement = abs(values["pyro"] - values["plain"]) / abs(values["pyro"])

    def step(name: str, batch) -> float:
        start = time.perf_counter()
        value = losses[name](batch)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        float(value.detach())  # as the training loop reads it
        return time.perf_counter() - start

    times: dict[str, list[float]] = {"pyro": [], "plain": []}
    for i in range(args.warmup + args.steps):
        order = ("pyro", "plain") if i % 2 == 0 else ("plain", "pyro")
        for name in order:
            elapsed = step(name, batches[i % len(batches)])
            if i >= args.warmup:
                times[name].append(elapsed)
    result = {"loss_relative_difference": agreement, "step_s": times}
    for name, values_s in times.items():
        median = statistics.median(values_s)
        result[name] = {
            "median_step_s": median,
            "steps_per_s": 1.0 / median,
            "cells_per_s": args.batch_size / median,
            "mean_step_s": statistics.fmean(values_s),
        }
    result["pyro_over_plain"] = result["pyro"]["median_step_s"] / result["plain"]["median_step_s"]
    result["pyro_over_plain_mean"] = result["pyro"]["mean_step_s"] / result["plain"]["mean_step_s"]
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per loss and guide")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--particles", type=int, default=5)
    parser.add_argument("--latent-dim", type=int, default=100)
    parser.add_argument("--guides", nargs="+", default=list(GUIDES))
    parser.add_argument("--smoke", action="store_true", help="tiny data and a few steps")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--out", type=Path, default=None, help="default: results/train_speed[_cuda].json"
    )
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = result_path("train_speed", args.device)
    if args.smoke:
        args.steps, args.warmup, args.batch_size, args.latent_dim = 3, 1, 32, 6
    torch.set_num_threads(2)
    simulation = SMOKE if args.smoke else REPLOGLE
    start = time.perf_counter()
    adata = sp.datasets.simulate(**simulation)
    simulate_s = time.perf_counter() - start
    sp.setup_anndata(adata, "condition", "control", context_key="cell_type")

    # Pyro's argument validation is off in training (see train_svi); time what training runs.
    with pyro.validation_enabled(False):
        guides = {guide: time_guide(adata, guide, args) for guide in args.guides}
    record = {
        "command": "python benchmarks/train_speed.py " + " ".join(sys.argv[1:] or argv or []),
        "smoke": args.smoke,
        "pyro_over_plain": guides["mean_field"]["pyro_over_plain"]
        if "mean_field" in guides
        else None,
        "data": {
            "generator": "samsvae_plus.datasets.simulate",
            "arguments": simulation,
            "cells": adata.n_obs,
            "genes": adata.n_vars,
            "simulate_s": simulate_s,
        },
        "settings": {
            "latent_dim": args.latent_dim,
            "batch_size": args.batch_size,
            "particles": args.particles,
            "timed_steps": args.steps,
            "warmup_steps": args.warmup,
            "optimizer": "Adam, parameter_groups(lr=3e-4)",
            "ratio": "median step time, pyro / plain",
        },
        "guides": guides,
        "device": args.device,
        "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
        "gpu_max_memory_allocated_gb": torch.cuda.max_memory_allocated() / 1e9
        if args.device.startswith("cuda")
        else None,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "pyro": pyro.__version__,
            "numpy": np.__version__,
            "samsvae_plus": __version__,
        },
    }
    atomic_write_text(args.out, json.dumps(record, indent=1) + "\n")
    print(f"{'guide':18} {'loss':6} {'steps/s':>8} {'cells/s':>9} {'pyro/plain':>10}")
    for guide, result in guides.items():
        for name in ("pyro", "plain"):
            figures = result[name]
            ratio = f"{result['pyro_over_plain']:10.3f}" if name == "pyro" else ""
            print(
                f"{guide:18} {name:6} {figures['steps_per_s']:8.2f} "
                f"{figures['cells_per_s']:9.0f} {ratio}"
            )
    return record


if __name__ == "__main__":
    main()
