"""Out-of-core training: peak memory and throughput from a backed 1M-cell h5ad.

    python benchmarks/scale.py [--cells 1000000] [--genes 2000] [--steps 300] [--smoke]
                               [--data PATH] [--reuse] [--out PATH]

1. Simulates ``--cells`` cells x ``--genes`` genes with
   :func:`~samsvae_plus.data.simulate.simulate_to_h5ad`, streaming CSR chunks to ``--data``
   (``--reuse`` keeps an existing file of the same size).
2. In a fresh Python process (so that its peak RSS is training's own), opens the file with
   ``anndata.read_h5ad(path, backed="r")``, registers it (``sp.setup_anndata``, counts read
   in blocks), and trains SAMS-VAE with ``model.train(loader="backed")`` for one epoch over
   ``--steps * --batch-size`` training cells drawn at random from the whole file (so every
   chunk of the file is read), with 2,048 validation cells. It then times, in the same
   process, (a) the backed loader alone over the training cells (batches/s) and (b) the
   training step alone (loss, backward and Adam on batches already in memory), and reports
   the process's peak RSS (``VmHWM``, see ``_memory``).

Writes ``benchmarks/results/scale.json`` (top-level ``peak_rss_gb``) and prints a table
last. The acceptance criterion is peak RSS < 4 GB and loader batches/s >= training steps/s.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _loader_timing import MODEL, SIMULATION, step_rate, time_pass
from _memory import peak_rss_bytes

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "scale.json"
RSS_LIMIT_GB = 4.0


def peak_rss_gb() -> float:
    return peak_rss_bytes() / 1e9


def worker(args) -> dict:
    """Everything that runs from the backed file; printed as JSON for the parent."""
    import anndata as ad
    import torch

    import samsvae_plus as sp
    from samsvae_plus.data.backed_loader import BackedLoader
    from samsvae_plus.data.checked import check_cells
    from samsvae_plus.data.encode import encode
    from samsvae_plus.data.splits import Split

    torch.set_num_threads(2)
    figures: dict = {}
    start = time.perf_counter()
    adata = ad.read_h5ad(args.data, backed="r")
    sp.setup_anndata(adata, "condition", "control", context_key="cell_type")
    figures["open_and_register_s"] = time.perf_counter() - start
    figures["rss_after_register_gb"] = peak_rss_gb()

    rng = np.random.default_rng(0)
    order = rng.permutation(adata.n_obs)
    n_train = min(args.steps * args.batch_size, adata.n_obs - 2 * args.validation)
    split = Split(
        name="scale",
        seed=0,
        train=np.sort(order[:n_train]),
        validation=np.sort(order[n_train : n_train + args.validation]),
        test=np.sort(order[n_train + args.validation :]),
    )
    model = sp.SAMSVAE(adata, **MODEL)
    start = time.perf_counter()
    history = model.train(
        max_epochs=1,
        batch_size=args.batch_size,
        n_particles=args.particles,
        split=split,
        loader="backed",
        progress=False,
        device="cpu",
        seed=0,
    )
    train_s = time.perf_counter() - start
    figures["training"] = {
        "steps": history.steps,
        "train_cells": n_train,
        "validation_cells": len(split.validation),
        "wall_s": train_s,
        "steps_per_s_end_to_end": history.steps / train_s,
        "validation_elbo": history.validation_elbo[-1],
        "note": "end to end: encoding, chunk-wise statistics, the epoch and the validation pass",
    }

    data = encode(check_cells(adata, model.registry), load_counts=False)
    loader = BackedLoader(data, split.train, batch_size=args.batch_size, seed=1)
    timed = time_pass(loader)
    figures["loader"] = {
        **timed,
        "cells_per_s": n_train / timed["wall_s"],
        "chunk_size": loader.chunk_size,
        "window_chunks": loader.window_chunks,
        "max_rows_held": loader.max_rows_held,
        "row_bound": loader.row_bound,
    }

    batches = [batch for _, batch in zip(range(4), loader, strict=False)]
    figures["step"] = step_rate(
        model.module, batches, loader.n_cells, args.particles, args.timed_steps, args.warmup
    )
    figures["peak_rss_gb"] = peak_rss_gb()
    figures["versions"] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "anndata": importlib.metadata.version("anndata"),
        "numpy": np.__version__,
        "samsvae_plus": sp.__version__,
    }
    return figures


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=300, help="training steps (one epoch)")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--particles", type=int, default=5)
    parser.add_argument("--validation", type=int, default=2048)
    parser.add_argument("--timed-steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--data", type=Path, default=None, help="h5ad to write (and train from)")
    parser.add_argument("--reuse", action="store_true", help="keep an existing --data file")
    parser.add_argument("--smoke", action="store_true", help="tiny file, a few steps")
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return {}
    if args.smoke:
        args.cells, args.genes, args.steps, args.batch_size = 3000, 50, 4, 64
        args.validation, args.timed_steps, args.warmup, args.particles = 128, 2, 1, 2
    simulation = {**SIMULATION, "n_genes": args.genes}
    if args.smoke:
        simulation.update(n_perturbations=10, n_combinations=5, ate_cells=10)
    with tempfile.TemporaryDirectory() as scratch:
        data = args.data or Path(scratch) / "scale.h5ad"
        record = run(args, simulation, data)
    return record


def run(args, simulation: dict, data: Path) -> dict:
    from samsvae_plus import __version__
    from samsvae_plus._atomic import atomic_write_text
    from samsvae_plus.data.simulate import simulate_to_h5ad

    generate_s = None
    if not (args.reuse and data.exists()):
        start = time.perf_counter()
        simulate_to_h5ad(data, args.cells, **simulation)
        generate_s = time.perf_counter() - start
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--data", str(data)]
    for flag in ("steps", "batch_size", "particles", "validation", "timed_steps", "warmup"):
        command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the training process failed:\n{done.stderr[-4000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    import h5py

    with h5py.File(data, "r") as f:
        n_cells, n_genes = f["X"].attrs["shape"]
        nnz = f["X/data"].shape[0]
    loader_rate = figures["loader"]["batches_per_s"]
    step_rate = figures["step"]["steps_per_s"]
    record = {
        "command": "python benchmarks/scale.py " + " ".join(sys.argv[1:]),
        "smoke": args.smoke,
        "peak_rss_gb": figures["peak_rss_gb"],
        "rss_limit_gb": RSS_LIMIT_GB,
        "loader_batches_per_s": loader_rate,
        "training_steps_per_s": step_rate,
        "loader_over_step_rate": loader_rate / step_rate,
        "criterion_holds": figures["peak_rss_gb"] < RSS_LIMIT_GB and loader_rate >= step_rate,
        "data": {
            "generator": "samsvae_plus.data.simulate.simulate_to_h5ad",
            "arguments": simulation,
            "cells": int(n_cells),
            "genes": int(n_genes),
            "nonzeros": int(nnz),
            "file_gb": data.stat().st_size / 1e9,
            "generate_s": generate_s,
        },
        "settings": {
            "model": MODEL,
            "batch_size": args.batch_size,
            "particles": args.particles,
            "threads": 2,
        },
        **{k: figures[k] for k in ("open_and_register_s", "rss_after_register_gb")},
        "training": figures["training"],
        "loader": figures["loader"],
        "step": figures["step"],
        "device": "cpu",
        "machine": platform.processor() or platform.machine(),
        "versions": {**figures["versions"], "samsvae_plus": __version__},
    }
    atomic_write_text(args.out, json.dumps(record, indent=1) + "\n")
    print(f"{'figure':34} {'value':>10}")
    print(f"{'cells x genes':34} {n_cells:>,} x {n_genes}")
    print(f"{'peak RSS (GB)':34} {record['peak_rss_gb']:10.2f}")
    print(f"{'backed loader (batches/s)':34} {loader_rate:10.2f}")
    print(f"{'training step (steps/s)':34} {step_rate:10.2f}")
    print(
        f"{'training end to end (steps/s)':34} {figures['training']['steps_per_s_end_to_end']:10.2f}"
    )
    print(f"criterion (RSS < {RSS_LIMIT_GB} GB, loader >= step): {record['criterion_holds']}")
    return record


if __name__ == "__main__":
    main()
