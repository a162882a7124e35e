"""T4, unseen cell type: ``unseen_cell_type.py`` run from its config, plus its figures.

The experiment itself (the 3-fold glioma-line hold-out on Norman, the 3-context
simulator, its methods and budgets) lives in ``unseen_cell_type.py`` and is run unchanged:
its constants are the ones of the runs already reported from it. This wrapper passes the
config's data sets and seeds, then draws ``avg_score`` and ATE Pearson per method (mean ±
sd over seeds of each seed's mean over the held-out folds); the script itself saves each
fold's split in ``splits.json``.

Usage::

    python experiments/t4_unseen_cell_type.py --out figures/t4_unseen_cell_type [--smoke]
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pandas as pd
from _common import save_figure, table_args
from _plots import bars
from unseen_cell_type import fold_means

from samsvae_plus._atomic import atomic_write_text

NAME = "t4_unseen_cell_type"
SCRIPT = Path(__file__).resolve().parent / "unseen_cell_type.py"


def main() -> None:
    args, config = table_args(NAME, __doc__, rows_only=True)
    seeds = [str(seed) for seed in args.seeds]
    argv = [str(SCRIPT), "--out", args.out, "--seeds", *seeds, "--data", *config["data"]]
    argv += ["--smoke"] * args.smoke + ["--rows-only"] * args.rows_only
    saved_argv = sys.argv
    sys.argv = argv
    try:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    finally:
        sys.argv = saved_argv
    if args.rows_only:
        return
    out = Path(args.out)
    record = json.loads((out / "run.json").read_text())
    record |= {"config": config}
    atomic_write_text(out / "run.json", json.dumps(record, indent=1, default=str) + "\n")
    seed_means = fold_means(pd.read_csv(out / "runs.csv"))
    for metric in ("avg_score", "ate_pearson"):
        save_figure(bars(seed_means, metric, "method", "data"), out, metric)


if __name__ == "__main__":
    main()
