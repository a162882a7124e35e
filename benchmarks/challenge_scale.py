"""Scale check of the challenge scorer: 100k cells x 18,080 genes, ~5 % non-zeros.

    python benchmarks/challenge_scale.py            # draws the data once into --data, then scores

The data (real, prediction and a training-like reference for the cell-mean baseline,
150 perturbations each) are sparse counts drawn group by group, never dense, and cached
as h5ad files. Scoring runs in a fresh process, pinned to two cores, that reads the three
files and calls ``challenge_score(pred, real, reference=reference)``; its peak RSS
(``VmHWM``, see ``_memory``) and times go to ``benchmarks/results/challenge_scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from _memory import peak_rss_bytes

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "challenge_scale.json"
THREADS = {k: "2" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def draw(path: Path, seed: int, n_cells: int, n_genes: int, n_perts: int, density: float):
    """Write a sparse-count AnnData drawn group by group (multinomial reads per cell)."""
    import anndata as ad
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    world = np.random.default_rng(0)  # genes and effects shared by every file
    popularity = world.pareto(1.2, n_genes) + 0.05
    names = [f"GENE{j:05d}" for j in range(n_genes)]
    targets = world.choice(n_genes, n_perts, replace=False)
    n_control = n_cells - n_perts * (n_cells // (n_perts + 1))
    sizes = [n_control] + [n_cells // (n_perts + 1)] * n_perts
    # Reads per cell chosen so that about `density` of the genes are non-zero.
    reads = int(density * n_genes * 1.6)
    blocks, labels = [], []
    for g, size in enumerate(sizes):
        p = popularity.copy()
        if g:
            hit = world.choice(n_genes, 200, replace=False)
            p[hit] *= np.exp(world.normal(0, 1, 200) + rng.normal(0, 0.3, 200))
            p[targets[g - 1]] *= 0.05
        cdf = np.cumsum(p / p.sum())
        per_cell = rng.poisson(reads * rng.lognormal(0, 0.3, size))
        cell = np.repeat(np.arange(size, dtype=np.int64), per_cell)
        gene = np.minimum(np.searchsorted(cdf, rng.random(cell.size)), n_genes - 1)
        keys, counts = np.unique(cell * n_genes + gene, return_counts=True)
        blocks.append(
            sp.csr_matrix(
                (counts.astype(np.float32), (keys // n_genes, keys % n_genes)),
                shape=(size, n_genes),
            )
        )
        labels += ["non-targeting" if g == 0 else names[targets[g - 1]]] * size
    X = sp.vstack(blocks, format="csr")
    obs = pd.DataFrame(
        {"target_gene": pd.Categorical(labels)}, index=[f"c{i}" for i in range(len(labels))]
    )
    ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=names)).write_h5ad(path)
    return X.nnz / (X.shape[0] * X.shape[1])


def score_worker(data: Path) -> None:
    """In a fresh process: read the three files, score, print timings as JSON."""
    start = time.perf_counter()
    import anndata as ad

    sys.path.insert(0, str(ROOT))
    from samsvae_plus.challenge.score import challenge_score

    imported = time.perf_counter()
    real = ad.read_h5ad(data / "real.h5ad")
    pred = ad.read_h5ad(data / "pred.h5ad")
    reference = ad.read_h5ad(data / "reference.h5ad")
    loaded = time.perf_counter()
    rss_loaded = peak_rss_bytes() / 2**30
    result = challenge_score(pred, real, reference=reference)
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "import_s": imported - start,
                "load_s": loaded - imported,
                "score_s": done - loaded,
                "peak_rss_after_load_gib": rss_loaded,
                "peak_rss_gib": peak_rss_bytes() / 2**30,
                "n_perturbations": len(result.per_perturbation),
                "mean": result.mean.to_dict(),
                "score": result.score.to_dict(),
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/challenge_scale"))
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--genes", type=int, default=18_080)
    parser.add_argument("--perturbations", type=int, default=150)
    parser.add_argument("--density", type=float, default=0.05)
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    load_before = os.getloadavg()  # other work on the machine skews timings
    if args.worker:
        score_worker(args.data)
        return 0

    args.data.mkdir(parents=True, exist_ok=True)
    densities = {}
    for seed, name in enumerate(("real", "pred", "reference"), start=1):
        path = args.data / f"{name}.h5ad"
        if not path.exists():
            t = time.perf_counter()
            densities[name] = draw(
                path, seed, args.cells, args.genes, args.perturbations, args.density
            )
            print(f"drew {name}: density {densities[name]:.4f} ({time.perf_counter() - t:.0f} s)")
    command = [sys.executable, __file__, "--worker", "--data", str(args.data)]
    if hasattr(os, "sched_setaffinity"):
        command = ["taskset", "-c", "0,1", *command]
    env = {**os.environ, **THREADS}
    wall = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - wall
    figures = json.loads(proc.stdout.strip().splitlines()[-1])

    import anndata as ad
    import numpy as np

    shape = ad.read_h5ad(args.data / "real.h5ad", backed="r").shape
    record = {
        "benchmark": "challenge_scale",
        "command": " ".join([Path(sys.executable).name, "benchmarks/challenge_scale.py"]),
        "data": {
            "cells": shape[0],
            "genes": shape[1],
            "perturbations": figures["n_perturbations"],
            "density_requested": args.density,
            "files": ["real", "pred", "reference (cell-mean baseline)"],
        },
        "figures": {**figures, "process_wall_s": wall},
        "limit_peak_rss_gib": 8.0,
        "versions": {"python": platform.python_version(), "numpy": np.__version__},
        "load_average_before_run": load_before,
        "device": {
            "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
            "cores_used": 2,
        },
    }
    from samsvae_plus._atomic import atomic_write_text

    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(record, indent=1) + "\n")
    print(f"\nwrote {args.out}")
    print(f"{'cells x genes':<28}{shape[0]} x {shape[1]}")
    print(f"{'perturbations':<28}{figures['n_perturbations']}")
    print(f"{'read 3 h5ad files (s)':<28}{figures['load_s']:.1f}")
    print(f"{'score with baseline (s)':<28}{figures['score_s']:.1f}")
    print(f"{'peak RSS (GiB)':<28}{figures['peak_rss_gib']:.2f}  (limit 8)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
