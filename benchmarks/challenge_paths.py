"""The scorer's two ways of summarising a file, timed side by side in one process.

    python benchmarks/challenge_paths.py            # uses challenge_speed.py's data

``summarise_file`` tests every perturbation in one compiled pass over the whole file
(``rank_stats``, the C extension); ``summarise_file_per_group`` is the numpy path (one
sort and one binary search per perturbation), taken for large files and wherever the
extension was not built, and timed here without the extension (as such an install runs
it). Both run on the same validated input, interleaved, single-threaded, so that load on
the machine affects both alike; the script first checks that they give identical
summaries. The ratio is the best of ``--repeats`` runs of each. Results go to
``benchmarks/results/challenge_paths.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "challenge_paths.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/challenge_speed"))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from samsvae_plus.challenge import compiled
    from samsvae_plus.challenge.files import read_scorer_file
    from samsvae_plus.challenge.inputs import check_pair
    from samsvae_plus.challenge.layout import SCORER_KEY, VCC_CONTROL_LABEL
    from samsvae_plus.challenge.summary import summarise_file, summarise_file_per_group

    if not (args.data / "real.h5ad").exists():
        sys.exit(f"no data in {args.data}: run benchmarks/challenge_speed.py first")
    load_before = os.getloadavg()
    real = read_scorer_file(args.data / "real.h5ad", SCORER_KEY)
    pred = read_scorer_file(args.data / "pred.h5ad", SCORER_KEY)
    inputs = check_pair(pred, real, perturbation_key=SCORER_KEY, control_label=VCC_CONTROL_LABEL)
    control = VCC_CONTROL_LABEL
    if compiled.kernels is None:
        sys.exit("the C extension is not built: pip install -e . with a C compiler")
    extension = compiled.kernels

    def per_group(inp, control):
        # As an install without the extension runs it (its erfc in Python too).
        compiled.kernels = None
        try:
            return summarise_file_per_group(inp, control)
        finally:
            compiled.kernels = extension

    fields = ("labels", "n_cells", "means", "control_mean", "fdr", "lfc")
    for inp in inputs:
        fast, slow = summarise_file(inp, control), per_group(inp, control)
        if not all(np.array_equal(getattr(fast, f), getattr(slow, f)) for f in fields):
            sys.exit("the two paths disagree")
    times: dict[str, list[float]] = {"per_group": [], "compiled": []}
    for _ in range(args.repeats):
        for name, summarise in (("per_group", per_group), ("compiled", summarise_file)):
            start = time.perf_counter()
            for inp in inputs:
                summarise(inp, control)
            times[name].append(time.perf_counter() - start)
    best = {name: min(values) for name, values in times.items()}
    record = {
        "benchmark": "challenge_paths",
        "command": "python benchmarks/challenge_paths.py",
        "data": "challenge_speed.py's files: 50 perturbations x 100 cells + 500 controls "
        "x 2000 genes, sparse counts; both files summarised, one thread",
        "identical_summaries": True,
        "best_s": best,
        "all_s": times,
        "speedup": best["per_group"] / best["compiled"],
        "load_average_before_run": load_before,
    }
    from samsvae_plus._atomic import atomic_write_text

    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(record, indent=1) + "\n")
    print(
        f"per group {best['per_group']:.3f} s, compiled {best['compiled']:.3f} s: "
        f"{record['speedup']:.2f}x (load average before {load_before[0]:.2f}) -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
