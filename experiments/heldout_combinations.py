"""Unseen combinations on the simulator: does SAMS-VAE predict A+B it never saw?

A quarter of the combination conditions are held out (all their cells are test cells);
every gene of a held-out combination is still seen alone. For each held-out combination
we compare with the simulator's true ATE:

- SAMS-VAE (correlated guide): the model's ATE of the combination;
- the additive baseline: the training data's ATE of A plus that of B, in the same
  log-normalised space.

Usage::

    python experiments/heldout_combinations.py --out figures/heldout_combinations [--seeds 0 1 2] [--smoke]
"""

from __future__ import annotations

import argparse
import time

import anndata as ad
import numpy as np
import pandas as pd
from _common import configure_torch, write_seed_summary

import samsvae_plus as sp
from samsvae_plus.cli.demo import DEMO_TRAINING
from samsvae_plus.data.splits import held_out_combinations
from samsvae_plus.evaluate.ate import ate_pearson, data_ate
from samsvae_plus.evaluate.combinations import additive_effects

SIMULATION = dict(n_perturbations=40, n_combinations=120, cells_per_condition=60, latent_dim=10)
SMOKE_SIMULATION = dict(
    n_perturbations=8,
    n_combinations=12,
    cells_per_condition=20,
    latent_dim=4,
    n_genes=60,
    ate_cells=50,
)
TRAINING = {**DEMO_TRAINING, "progress": False}
SMOKE_TRAINING = dict(max_epochs=4, dense_epochs=2, n_particles=1, batch_size=128, progress=False)


def additive_baseline(train: ad.AnnData, combinations: list[str]) -> pd.DataFrame:
    """ATE(A) + ATE(B) from the training cells, for each ``A+B``."""
    return additive_effects(data_ate(train, "condition", "control"), combinations)


def run(seed: int, smoke: bool) -> dict:
    adata = sp.datasets.simulate(**(SMOKE_SIMULATION if smoke else SIMULATION), seed=seed)
    truth = adata.uns["simulation"]["true_ate"]
    sp.setup_anndata(adata, "condition", "control", context_key="cell_type")
    split = held_out_combinations(adata.obs["condition"], fraction=0.25, seed=seed)
    held = sorted(set(adata.obs["condition"].to_numpy()[split.test]))
    seen = sorted(c for c in set(adata.obs["condition"].to_numpy()[split.train]) if "+" in c)
    model = sp.SAMSVAE(
        adata, latent_dim=adata.uns["simulation"]["params"]["latent_dim"], guide="correlated"
    )
    model.train(**(SMOKE_TRAINING if smoke else TRAINING), split=split, seed=seed)
    predicted = model.average_treatment_effect(held + seen, n_draws=5, n_cells=200, seed=seed)
    baseline = additive_baseline(adata[split.train], held)
    test_data = data_ate(
        adata[np.concatenate([split.test, split.train])], "condition", "control"
    ).loc[held]
    return {
        "seed": seed,
        "n_held_out": len(held),
        "n_seen_combinations": len(seen),
        "sams_vae_unseen": ate_pearson(predicted.loc[held], truth),
        "additive_unseen": ate_pearson(baseline, truth),
        "sams_vae_unseen_vs_test_data": ate_pearson(predicted.loc[held], test_data),
        "additive_unseen_vs_test_data": ate_pearson(baseline, test_data),
        "sams_vae_seen": ate_pearson(predicted.loc[seen], truth),
        "split": split.to_dict() | {"held_out_conditions": held},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="figures/heldout_combinations")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--smoke", action="store_true", help="tiny data and budget, for tests")
    args = parser.parse_args()
    configure_torch()
    started = time.perf_counter()
    results = [run(seed, args.smoke) for seed in args.seeds]
    write_seed_summary(
        args,
        results,
        [
            "sams_vae_unseen",
            "additive_unseen",
            "sams_vae_unseen_vs_test_data",
            "additive_unseen_vs_test_data",
            "sams_vae_seen",
        ],
        "ATE Pearson",
        {"simulation": SIMULATION, "training": TRAINING},
        started,
    )


if __name__ == "__main__":
    main()
