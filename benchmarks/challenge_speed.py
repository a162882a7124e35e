"""Speed and memory of the challenge scorer against cell-eval 0.8.x, side by side.

    python benchmarks/challenge_speed.py --cell-eval-python /tmp/ce/bin/python

Data: 50 perturbations x 100 cells + 500 control cells x 2,000 genes, sparse counts, for
both the real data and the prediction (drawn by ``testing.challenge_cases``). Each scorer runs
in its own fresh process pinned to two cores (``taskset -c 0,1``, thread variables set to
2, cell-eval with ``num_threads=2``), with the same protocol:

* cold: from process start to the first result: import of the scorer, reading both h5ad
  files and the first evaluation (cell-eval's includes its numba compilation); both
  import from bytecode (the script compiles ours first, as `pip install` compiled
  cell-eval's);
* first call: the first evaluation alone;
* warm: the best of three further evaluations in the same process, each on the two files
  read afresh outside the timer (cell-eval normalises its inputs in place);
* peak RSS: the process's own high-water mark (``VmHWM``, see ``_memory``), and its growth over the RSS after loading.

cell-eval's evaluation is ``MetricsEvaluator(...).compute(profile="vcc")`` on AnnData
read with ``anndata.read_h5ad``. Ours does what ``samsvae-plus score`` does: it reads the
two h5ad files with h5py alone (``read_scorer_file``: X, the perturbation column and the
gene names, without importing anndata or pandas) and evaluates ``score_tables``, the
pandas-free core of ``challenge_score`` (same numbers). Both sides thus import their
scorer, read both files and score them. Both must give the same means, which the script
checks. Results go to ``benchmarks/results/challenge_speed.json``.
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

START = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "challenge_speed.json"
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "POLARS_MAX_THREADS",
)


def _rss_gib() -> float:
    return peak_rss_bytes() / 2**30


def worker(which: str, data: Path) -> dict:
    """Run one scorer in this (fresh) process and return its figures."""
    import logging
    import warnings

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    if which == "cell-eval":
        os.environ["TQDM_DISABLE"] = "1"
        from cell_eval import MetricsEvaluator

        def evaluate(pred, real):
            evaluator = MetricsEvaluator(
                adata_pred=pred,
                adata_real=real,
                control_pert="non-targeting",
                pert_col="target_gene",
                num_threads=2,
                outdir=str(data / "cell_eval_out"),
            )
            _, agg = evaluator.compute(profile="vcc", write_csv=False)
            row = agg.filter(agg["statistic"] == "mean").drop("statistic").row(0, named=True)
            return {k: float(v) for k, v in row.items()}

        import anndata as ad

        read = ad.read_h5ad

    else:
        sys.path.insert(0, str(ROOT))
        from samsvae_plus.challenge.files import read_scorer_file
        from samsvae_plus.challenge.score import score_tables

        def evaluate(pred, real):
            result = score_tables(pred, real)
            names = ("overlap_at_N", "mae", "discrimination_score_l1")
            return {k: float(result.mean[k]) for k in names}

        def read(path):
            file = read_scorer_file(path, "target_gene")
            if file is None:
                raise RuntimeError(f"{path} is not in a layout read without anndata")
            return file

    imported = time.perf_counter()
    real = read(data / "real.h5ad")
    pred = read(data / "pred.h5ad")
    loaded = time.perf_counter()
    rss_loaded = _rss_gib()
    # Cold ends with the first result on the files as read; the warm calls get fresh
    # reads made outside their timers (cell-eval normalises its inputs in place).
    means = evaluate(pred, real)
    done = time.perf_counter()
    first, cold = done - loaded, done - START
    del pred, real
    warm = []
    for _ in range(3):
        pair = read(data / "pred.h5ad"), read(data / "real.h5ad")
        t = time.perf_counter()
        evaluate(*pair)
        warm.append(time.perf_counter() - t)
        del pair
    return {
        "cold_s": cold,
        "import_s": imported - START,
        "load_s": loaded - imported,
        "first_call_s": first,
        "warm_s": min(warm),
        "warm_all_s": warm,
        "peak_rss_gib": _rss_gib(),
        "rss_after_load_gib": rss_loaded,
        "means": means,
    }


def _draw(data: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from samsvae_plus.testing.challenge_cases import CaseSpec, challenge_case

    spec = CaseSpec(seed=2024, n_perturbations=50, cells=(100, 100), n_control=500, n_genes=2000)
    case = challenge_case(spec)
    data.mkdir(parents=True, exist_ok=True)
    case["real"].write_h5ad(data / "real.h5ad")
    case["noisy"].write_h5ad(data / "pred.h5ad")


def _version(python: str, package: str) -> str:
    code = f"import importlib.metadata as m; print(m.version('{package}'))"
    return subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell-eval-python", default="/tmp/ce/bin/python")
    parser.add_argument("--data", type=Path, default=Path("/tmp/challenge_speed"))
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--worker", choices=["ours", "cell-eval"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    load_before = os.getloadavg()  # other work on the machine skews timings
    if args.worker:
        print(json.dumps(worker(args.worker, args.data)))
        return 0

    _draw(args.data)
    # Both sides import from bytecode, as after `pip install` (which compiled cell-eval's):
    # an editable checkout under PYTHONDONTWRITEBYTECODE=1 would recompile ours every run.
    import compileall

    compileall.compile_dir(ROOT / "samsvae_plus", quiet=1)
    env = {**os.environ, **{k: "2" for k in THREAD_VARS}}
    pin = ["taskset", "-c", "0,1"] if hasattr(os, "sched_setaffinity") else []
    figures = {}
    for which, python in (("cell-eval", args.cell_eval_python), ("ours", sys.executable)):
        command = [*pin, python, __file__, "--worker", which, "--data", str(args.data)]
        proc = subprocess.run(command, env=env, capture_output=True, text=True)
        if proc.returncode:
            sys.stderr.write(proc.stderr[-3000:])
            return proc.returncode
        figures[which] = json.loads(proc.stdout.strip().splitlines()[-1])

    ce, us = figures["cell-eval"], figures["ours"]
    agree = all(abs(ce["means"][k] - us["means"][k]) < 1e-6 for k in ce["means"])
    ratios = {
        "warm_speedup": ce["warm_s"] / us["warm_s"],
        "first_call_speedup": ce["first_call_s"] / us["first_call_s"],
        "cold_speedup": ce["cold_s"] / us["cold_s"],
        "peak_rss_ratio": ce["peak_rss_gib"] / us["peak_rss_gib"],
        "rss_growth_ratio": (ce["peak_rss_gib"] - ce["rss_after_load_gib"])
        / max(1e-9, us["peak_rss_gib"] - us["rss_after_load_gib"]),
    }
    import numpy as np
    import scipy

    record = {
        "benchmark": "challenge_speed",
        "command": "python benchmarks/challenge_speed.py --cell-eval-python /tmp/ce/bin/python",
        "data": "50 perturbations x 100 cells + 500 controls x 2000 genes, sparse counts",
        "cores": "taskset -c 0,1; OMP/OPENBLAS/MKL/NUMBA/POLARS threads = 2",
        "figures": figures,
        "ratios": ratios,
        "means_agree": agree,
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "cell-eval": _version(args.cell_eval_python, "cell-eval"),
            "pdex": _version(args.cell_eval_python, "pdex"),
        },
        "load_average_before_run": load_before,
        "device": {"machine": platform.machine(), "cpus_visible": os.cpu_count()},
    }
    from samsvae_plus._atomic import atomic_write_text

    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}; means agree: {agree}\n")
    print(f"{'':<22}{'cell-eval':>12}{'ours':>10}{'ratio':>9}")
    for label, key, ratio in (
        ("cold (s)", "cold_s", "cold_speedup"),
        ("first call (s)", "first_call_s", "first_call_speedup"),
        ("warm (s)", "warm_s", "warm_speedup"),
        ("peak RSS (GiB)", "peak_rss_gib", "peak_rss_ratio"),
    ):
        print(f"{label:<22}{ce[key]:>12.3f}{us[key]:>10.3f}{ratios[ratio]:>8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
