"""T2, held-out combinations: predict combinations never trained on, as more are seen.

A fixed quarter of the combinations (per seed) are the test set; a share f ∈ {0, 0.25,
0.5, 0.75} of all combinations is trained on (``splits.seen_combinations``; nested, so
a larger f only adds combinations). Test cells are held-out combination cells only.
Per data set, model and f, mean ± sd over seeds of:

- test IWELBO, and relative to SAMS-VAE (correlated guide) at f = 0;
- ATE Pearson on the held-out combinations (against the simulator's truth, or the
  held-out cells' data ATE in K562), beside the additive baseline;
- on Norman, the Spearman correlation over combinations of the model's non-additive
  residual (||ATE(A+B) - ATE(A) - ATE(B)||) with Norman et al.'s published interaction
  scores (``norman2019_gi``).

Norman's part of ``norman_mcfaline_devel`` has 15 combinations, and only 5 of them have
both genes perturbed alone (the others cannot be predicted from singles): the test set
is 4 of those 5, and the residual comparison has at most 5 points. So the Norman rows
are a check of the design, not evidence; the simulator (many combinations) carries the
trend.

Usage::

    python experiments/t2_heldout_combinations.py --out figures/t2_heldout_combinations [--smoke]
"""

from __future__ import annotations

import time

import numpy as np
from _common import each_seed, table_args
from _data import KEY
from _sweep import METRICS, sweep, write_sweep

import samsvae_plus as sp
from samsvae_plus.data.splits import seen_combinations

NAME = "t2_heldout_combinations"
FRACTION = "seen_fraction"


def predictable(conditions) -> list[str]:
    """Combinations whose genes were each perturbed alone in the data."""
    labels = set(np.asarray(conditions, dtype=str))
    return sorted(c for c in labels if "+" in c and set(c.split("+")) <= labels)


def make_split(config: dict):
    def split_at(adata, fraction, seed):
        conditions = adata.obs[KEY].to_numpy(dtype=str)
        split = seen_combinations(
            conditions,
            fraction,
            test_fraction=config["test_fraction"],
            candidates=predictable(conditions),
            seed=seed,
        )
        return split, split.test, sorted(set(conditions[split.test]))

    return split_at


def main() -> None:
    args, config = table_args(NAME, __doc__)
    started = time.perf_counter()
    interactions = {
        data: sp.datasets.norman2019_interactions()[spec["interaction_score"]]
        for data, spec in config["datasets"].items()
        if spec.get("interaction_score")
    }

    def run(data, spec, seed):
        split_at = make_split(config)
        scores = interactions.get(data)
        return sweep(data, spec, seed, config, split_at, FRACTION, args.device, scores)

    rows, splits = each_seed(config, args.seeds, run)
    write_sweep(args, config, rows, splits, FRACTION, 0, METRICS, started)


if __name__ == "__main__":
    main()
