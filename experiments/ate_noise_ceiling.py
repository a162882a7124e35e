"""How well can any model's ATE match T1's real test cells? The data's own noise ceiling.

T1 scores a model's ATE against the data ATE of the test cells (20% of a random split),
per cell type. On real data those test ATEs rest on a handful of cells per condition, so
even a perfect model cannot correlate with them beyond the agreement between two
independent samples of the same cells. This script measures that agreement: on T1's own
splits (the data sets and split fractions of the config named by ``splits_of``, its smoke
ones with ``--smoke``; the seeds of ``configs/ate_noise_ceiling.yaml``), the data ATE of
the training cells against the data ATE of the test cells, with the same Pearson scores
(all genes, top 20). A model's T1 ATE Pearson reads against this number, not against 1.

Usage::

    python experiments/ate_noise_ceiling.py [--out figures/ate_noise_ceiling] [--seeds 0 1 2] [--smoke]
"""

from __future__ import annotations

import time

import pandas as pd
from _common import (
    each_seed,
    load_config,
    seed_summary,
    split_record,
    table_args,
    write_outputs,
)
from _data import load_dataset
from _scores import ate_scores, reference_ate
from t1_models_guides import t1_split

NAME = "ate_noise_ceiling"
METRICS = ["ate_pearson", "ate_pearson_top20", "n_conditions"]


def run_seed(data: str, spec: dict, seed: int, config: dict):
    adata, _ = load_dataset(spec, seed)
    split = t1_split(adata, config, seed)
    test = reference_ate(adata, split.test, None)
    train = reference_ate(adata, split.train, None)
    common = test.index.intersection(train.index)  # (cell type, condition) in both parts
    row = {
        "data": data,
        "reference": "data ATE of the training cells",
        "seed": seed,
        **ate_scores(train.loc[common], test.loc[common]),
        "n_conditions": len(common),
    }
    print(row, flush=True)
    return [row], [split_record(split, data=data)]


def main() -> None:
    args, config = table_args(NAME, __doc__)
    started = time.perf_counter()
    table_config = load_config(config["splits_of"], args.smoke)
    # The simulator's reference is its true ATE, which has no sampling noise.
    datasets = table_config["datasets"]
    table_config["datasets"] = {k: v for k, v in datasets.items() if "simulate" not in v}
    rows, splits = each_seed(
        table_config,
        args.seeds,
        lambda data, spec, seed: run_seed(data, spec, seed, table_config),
    )
    runs = pd.DataFrame(rows)
    table = seed_summary(runs, ["data", "reference"], METRICS)
    meta = {**config, "smoke": args.smoke, "seeds": args.seeds}
    write_outputs(args.out, table, runs, {**meta, "splits": splits}, started)
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
