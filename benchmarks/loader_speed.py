"""Batches per second of each loader, against the training step rate.

    python benchmarks/loader_speed.py [--cells 50000] [--genes 2000] [--device cpu|cuda]
                                      [--smoke] [--out PATH]

Simulates ``--cells`` x ``--genes`` to an h5ad (``simulate_to_h5ad``), then times one
shuffled pass of batch 512 over all cells with

- ``memory``: :class:`~samsvae_plus.data.loaders.InMemoryLoader` on the file read into
  memory;
- ``backed``: :class:`~samsvae_plus.data.backed_loader.BackedLoader` on the file opened
  with ``backed="r"`` (default chunks of 32,768 rows, 4 per window);
- ``resident``: :class:`~samsvae_plus.data.loaders.ResidentLoader`, the cells copied to
  ``--device`` once as CSR and each batch gathered there (on the CPU this measures the
  gather alone; its purpose is a GPU);

and the training step (SAMS-VAE, correlated guide, K = 10, 5 particles, Adam; on batches
already on ``--device``, 2 threads). Batches are produced on ``--device`` by every loader
(``memory`` and ``backed`` copy CSR arrays there and densify them on arrival). Writes ``benchmarks/results/loader_speed.json`` and prints
a table last.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import anndata as ad
import numpy as np
import torch
from _loader_timing import MODEL, SIMULATION, step_rate, time_pass
from _results import result_path

import samsvae_plus as sp
from samsvae_plus import __version__
from samsvae_plus._atomic import atomic_write_text
from samsvae_plus.data.backed_loader import BackedLoader
from samsvae_plus.data.checked import check_cells
from samsvae_plus.data.encode import encode
from samsvae_plus.data.loaders import InMemoryLoader, ResidentLoader
from samsvae_plus.data.registry import get_registry
from samsvae_plus.data.simulate import simulate_to_h5ad

LOADERS = ("memory", "backed", "resident")
SETUP = dict(perturbation_key="condition", control_label="control", context_key="cell_type")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=50_000)
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--particles", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="tiny file")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--out", type=Path, default=None, help="default: results/loader_speed[_cuda].json"
    )
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = result_path("loader_speed", args.device)
    simulation = {**SIMULATION, "n_genes": args.genes}
    warmup = 3
    if args.smoke:
        args.cells, args.genes, args.batch_size, args.steps, warmup = 2000, 40, 64, 2, 1
        simulation.update(n_genes=40, n_perturbations=10, n_combinations=5, ate_cells=10)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as scratch:
        path = simulate_to_h5ad(Path(scratch) / "cells.h5ad", args.cells, **simulation)
        in_memory = ad.read_h5ad(path)
        backed = ad.read_h5ad(path, backed="r")
        sp.setup_anndata(in_memory, **SETUP)
        sp.setup_anndata(backed, **SETUP)
        registry = get_registry(in_memory)
        encoded = encode(check_cells(in_memory, registry))
        options = dict(batch_size=args.batch_size, device=args.device)
        loaders = {
            "memory": InMemoryLoader(encoded, **options),
            "backed": BackedLoader(
                encode(check_cells(backed, registry), load_counts=False), **options
            ),
            "resident": ResidentLoader(encoded, **options),
        }
        results = {name: time_pass(loader) for name, loader in loaders.items()}
        results["backed"]["max_rows_held"] = loaders["backed"].max_rows_held
        results["resident"]["device_bytes"] = loaders["resident"].counts.nbytes
        backed.file.close()
    batches = [b for _, b in zip(range(4), loaders["memory"], strict=False)]
    module = sp.SAMSVAE(in_memory, **MODEL).module.to(args.device)
    step = step_rate(module, batches, in_memory.n_obs, args.particles, args.steps, warmup)
    for name in LOADERS:
        results[name]["over_step_rate"] = results[name]["batches_per_s"] / step["steps_per_s"]
    record = {
        "command": "python benchmarks/loader_speed.py " + " ".join(sys.argv[1:] or argv or []),
        "smoke": args.smoke,
        "data": {
            "generator": "samsvae_plus.data.simulate.simulate_to_h5ad",
            "arguments": simulation,
            "cells": args.cells,
            "genes": args.genes,
        },
        "settings": {"batch_size": args.batch_size, "particles": args.particles, "threads": 2},
        "loaders": results,
        "step": step,
        "device": args.device,
        "machine": platform.processor() or platform.machine(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "samsvae_plus": __version__,
        },
    }
    atomic_write_text(args.out, json.dumps(record, indent=1) + "\n")
    print(f"{'loader':14} {'batches/s':>10} {'/ step rate':>11}")
    for name in LOADERS:
        r = results[name]
        print(f"{name:14} {r['batches_per_s']:10.1f} {r['over_step_rate']:11.1f}")
    print(f"{'training step':14} {step['steps_per_s']:10.2f} steps/s")
    return record


if __name__ == "__main__":
    main()
