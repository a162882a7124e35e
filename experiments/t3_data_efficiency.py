"""T3, data efficiency: how scores fall as combination cells are removed from training.

A random 64/16/20 cell split per seed; its training set keeps a share ∈ {0.25, 0.5,
0.75, 1} of its combination cells (``splits.data_efficiency``; nested, with the same
validation and test cells at every share). Scores are on the test cells of combinations
only: test IWELBO (also relative to SAMS-VAE, correlated guide, with every cell kept),
and ATE Pearson of the combinations beside the additive baseline; mean ± sd over seeds.

Usage::

    python experiments/t3_data_efficiency.py --out figures/t3_data_efficiency [--smoke]
"""

from __future__ import annotations

import time

import numpy as np
from _common import each_seed, table_args
from _data import KEY
from _sweep import METRICS, sweep, write_sweep

from samsvae_plus.data.splits import data_efficiency

NAME = "t3_data_efficiency"
FRACTION = "kept_fraction"


def make_split(config: dict):
    def split_at(adata, fraction, seed):
        conditions = adata.obs[KEY].to_numpy(dtype=str)
        split = data_efficiency(
            conditions, fraction, fractions=tuple(config["split_fractions"]), seed=seed
        )
        test = split.test[np.char.find(conditions[split.test], "+") >= 0]
        return split, test, sorted(set(conditions[test]))

    return split_at


def main() -> None:
    args, config = table_args(NAME, __doc__)
    started = time.perf_counter()
    rows, splits = each_seed(
        config,
        args.seeds,
        lambda data, spec, seed: sweep(
            data, spec, seed, config, make_split(config), FRACTION, args.device
        ),
    )
    metrics = [m for m in METRICS if m != "residual_vs_interactions_spearman"]
    write_sweep(args, config, rows, splits, FRACTION, 1.0, metrics, started)


if __name__ == "__main__":
    main()
