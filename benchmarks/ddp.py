"""Data-parallel training on CPU: 2 gloo processes against 1 process, same global batch.

    python benchmarks/ddp.py [--epochs 20] [--smoke]

Trains SAMS-VAE with the former demo's model (``_former_demo.py``) on the demo's
simulation (global batch 512, one particle) once in a single process with 2 threads and once as 2 ``torchrun`` processes
with 1 thread each (gloo), each in a fresh process, alternating twice, and reports the
training wall time (from ``train``'s history), the steps per second, the best validation
ELBO of each and the speed ratio. Writes ``benchmarks/results/ddp.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import _former_demo as former_demo

RESULT = Path(__file__).resolve().parent / "results" / "ddp.json"

WORKER = """
import json, os, sys
import torch
import samsvae_plus as sp
from samsvae_plus.data.splits import random_split

threads, epochs, out, smoke = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
config = json.loads(sys.argv[5])
torch.set_num_threads(threads)
simulation = dict(n_perturbations=8, n_genes=50, cells_per_condition=20, n_control_cells=60) if smoke else {}
adata = sp.datasets.simulate(seed=0, **simulation)
sp.setup_anndata(adata, "condition", "control", context_key="cell_type")
model = sp.SAMSVAE(adata, **config["model"])
distributed = "RANK" in os.environ
history = model.train(
    **{**config["training"], **({"batch_size": 64} if smoke else {})},
    max_epochs=epochs, dense_epochs=2 * epochs // 5, seed=0, progress=False, distributed=distributed,
    split=random_split(adata.n_obs, (0.8, 0.1, 0.1), seed=0),
)
if int(os.environ.get("RANK", "0")) == 0:
    with open(out, "w") as handle:
        json.dump({
            "wall_s": history.wall_time_s,
            "steps": history.steps,
            "validation_elbo": max(history.validation_elbo[history.dense_epochs:]),
            "cells": adata.n_obs,
        }, handle)
"""


def run_once(processes: int, epochs: int, smoke: bool, directory: Path) -> dict:
    worker = directory / "worker.py"
    worker.write_text(WORKER)
    out = directory / f"result-{processes}.json"
    threads = 2 // processes if processes <= 2 else 1
    config = json.dumps({"model": former_demo.MODEL, "training": former_demo.TRAINING})
    arguments = [str(worker), str(threads), str(epochs), str(out), "1" if smoke else "0", config]
    if processes == 1:
        command = [sys.executable, *arguments]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += [f"--nproc_per_node={processes}", *arguments]
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    result = subprocess.run(command, capture_output=True, text=True, env=environment)
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-3000:])
        raise SystemExit(f"the {processes}-process run failed")
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="tiny data, 2 epochs, no JSON")
    args = parser.parse_args()
    epochs, repeats = (2, 1) if args.smoke else (args.epochs, args.repeats)
    runs: dict[int, list[dict]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as directory:
        for _ in range(repeats):
            for processes in (1, 2):
                runs[processes].append(run_once(processes, epochs, args.smoke, Path(directory)))
    best = {p: min(runs[p], key=lambda r: r["wall_s"]) for p in runs}
    rate = {p: best[p]["steps"] / best[p]["wall_s"] for p in best}
    record = {
        "command": f"python benchmarks/ddp.py --epochs {epochs} --repeats {repeats}",
        "smoke": args.smoke,
        "device": "cpu (2 cores): 1 process x 2 threads vs 2 gloo processes x 1 thread",
        "runs": {str(p): runs[p] for p in runs},
        "steps_per_s": {str(p): rate[p] for p in rate},
        "two_over_one_speed": rate[2] / rate[1],
        "validation_elbo": {str(p): best[p]["validation_elbo"] for p in best},
        "python": platform.python_version(),
    }
    if not args.smoke:
        from samsvae_plus._atomic import atomic_write_text

        atomic_write_text(RESULT, json.dumps(record, indent=1) + "\n")
    print(f"{'processes':>9} {'steps':>6} {'best wall s':>11} {'steps/s':>8} {'val ELBO':>9}")
    for p in (1, 2):
        print(
            f"{p:9d} {best[p]['steps']:6d} {best[p]['wall_s']:11.2f} {rate[p]:8.2f} "
            f"{best[p]['validation_elbo']:9.2f}"
        )
    print(f"2 processes / 1 process, steps per second: {rate[2] / rate[1]:.2f}")


if __name__ == "__main__":
    main()
