"""Posterior sampling at scale: cells/s and peak memory of ``predict`` and ``sample``.

    python benchmarks/predict_speed.py [--cells 1000000] [--genes 2000] [--batch-size 4096]
                                       [--device cpu|cuda] [--smoke] [--out PATH]

1. Simulates a training set (``_loader_timing.SIMULATION`` with ``--genes`` genes, one
   context, 8,000 cells) and fits SAMS-VAE (``_loader_timing.MODEL``) for two epochs:
   sampling speed does not depend on how well the model fits.
2. In a fresh Python process each (so that the peak RSS is the call's own):
   - ``predict``: ``model.predict(controls, [control, 3 perturbations])`` with
     ``--cells / 4`` control cells (the simulation's controls, tiled), so ``--cells``
     cells come out;
   - ``sample``: ``model.sample([control, 3 perturbations], n_cells=--cells / 4)``.
   Both work in chunks of ``--batch-size`` cells and store each chunk sparse at once.
   Reported: cells out per second, peak RSS (``VmHWM``, see ``_memory``), the RSS before the call, and
   the output's CSR size beside its dense size.

Writes ``benchmarks/results/predict_speed.json`` and prints a table last.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _loader_timing import MODEL, SIMULATION
from _memory import peak_rss_bytes
from _results import result_path

ROOT = Path(__file__).resolve().parents[1]
N_CONDITIONS = 4  # the control and three perturbations


def rss_gb() -> float:
    return peak_rss_bytes() / 1e9


def worker(args) -> dict:
    """One call, in this process; printed as JSON for the parent."""
    import anndata as ad
    import numpy as np
    import torch

    import samsvae_plus as sp

    torch.set_num_threads(2)
    model = sp.SAMSVAE.load(args.model, device=args.device)
    conditions = [model.registry.control_label] + [
        c for c in model.registry.conditions if c != model.registry.control_label
    ][: N_CONDITIONS - 1]
    per_condition = args.cells // N_CONDITIONS
    if args.verb == "predict":
        controls = ad.read_h5ad(args.controls)
        tiled = controls[np.arange(per_condition) % controls.n_obs].copy()
        tiled.obs_names_make_unique()
        del tiled.obs[model.registry.perturbation_key]  # encode them as controls
        before = rss_gb()
        start = time.perf_counter()
        out = model.predict(tiled, conditions, batch_size=args.batch_size)
    else:
        before = rss_gb()
        start = time.perf_counter()
        out = model.sample(conditions, n_cells=per_condition, batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    X = out.X
    return {
        "cells_out": int(out.n_obs),
        "seconds": seconds,
        "cells_per_s": out.n_obs / seconds,
        "rss_before_gb": before,
        "peak_rss_gb": rss_gb(),
        "output_nonzeros": int(X.nnz),
        "output_csr_gb": (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 1e9,
        "output_dense_gb": out.n_obs * out.n_vars * 4 / 1e9,
        "gpu_max_memory_allocated_gb": torch.cuda.max_memory_allocated() / 1e9
        if args.device.startswith("cuda")
        else None,
        "versions": {"torch": torch.__version__, "anndata": ad.__version__},
    }


def prepare(args, scratch: Path) -> tuple[Path, Path, dict]:
    """A model fitted for two epochs and the simulation's control cells, on disk."""
    import torch

    import samsvae_plus as sp

    torch.set_num_threads(2)
    simulation = {
        **SIMULATION,
        "n_genes": args.genes,
        "n_contexts": 1,
        "n_combinations": 0,
        "n_perturbations": 20 if args.smoke else 50,
        "cells_per_condition": 20 if args.smoke else 120,
        "n_control_cells": 200 if args.smoke else 2000,
    }
    adata = sp.datasets.simulate(**simulation)
    sp.setup_anndata(adata, "condition", "control", context_key="cell_type")
    model = sp.SAMSVAE(adata, **MODEL)
    model.train(max_epochs=2, dense_epochs=1, n_particles=1, progress=False, seed=0)
    model_dir, controls = scratch / "model", scratch / "controls.h5ad"
    model.save(model_dir)
    adata[adata.obs["condition"] == "control"].copy().write_h5ad(controls)
    return model_dir, controls, simulation


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1_000_000, help="cells out per call")
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--smoke", action="store_true", help="a few thousand cells")
    parser.add_argument(
        "--out", type=Path, default=None, help="default: results/predict_speed[_cuda].json"
    )
    parser.add_argument("--worker", choices=("predict", "sample"), default=None, dest="verb")
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--controls", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = result_path("predict_speed", args.device)
    if args.verb is not None:
        print(json.dumps(worker(args)))
        return {}
    if args.smoke:
        args.cells, args.genes, args.batch_size = 2000, 50, 256
    from samsvae_plus import __version__
    from samsvae_plus._atomic import atomic_write_text

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    calls = {}
    with tempfile.TemporaryDirectory() as scratch:
        model_dir, controls, simulation = prepare(args, Path(scratch))
        for verb in ("predict", "sample"):
            command = [
                sys.executable,
                str(Path(__file__).resolve()),
                f"--worker={verb}",
                f"--model={model_dir}",
                f"--controls={controls}",
                f"--cells={args.cells}",
                f"--batch-size={args.batch_size}",
                f"--device={args.device}",
            ]
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"the {verb} process failed:\n{done.stderr[-4000:]}")
            calls[verb] = json.loads(done.stdout.strip().splitlines()[-1])
    record = {
        "benchmark": "predict_speed",
        "command": "python benchmarks/predict_speed.py " + " ".join(sys.argv[1:]),
        "smoke": args.smoke,
        "cells_out": args.cells,
        "genes": args.genes,
        "batch_size": args.batch_size,
        "conditions": N_CONDITIONS,
        "simulation": simulation,
        "model": MODEL,
        "calls": calls,
        "device": args.device,
        "threads": 2,
        "load_average_before": os.getloadavg()[0],
        "machine": platform.processor() or platform.machine(),
        "versions": {**calls["sample"]["versions"], "samsvae_plus": __version__},
    }
    atomic_write_text(args.out, json.dumps(record, indent=1) + "\n")
    print(
        f"{'call':8} {'cells out':>10} {'cells/s':>9} {'peak RSS GB':>12} {'CSR GB':>7} {'dense GB':>9}"
    )
    for verb, call in calls.items():
        print(
            f"{verb:8} {call['cells_out']:>10,} {call['cells_per_s']:9.0f} "
            f"{call['peak_rss_gb']:12.2f} {call['output_csr_gb']:7.2f} {call['output_dense_gb']:9.2f}"
        )
    return record


if __name__ == "__main__":
    main()
