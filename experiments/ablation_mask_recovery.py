"""Which training choices make SAMS-VAE recover the simulator's masks? One table.

Rows switch off one choice at a time, at the demo's settings and budget:

- ``full``: the demo (``samsvae-plus demo``): dense start + varimax rotation, the
  ``correlated_basal`` guide (q(z_basal | x, sampled shift)), per-perturbation learning
  rate x30;
- ``no dense start``: masks learned from random initial values (``dense_epochs=0``);
- ``x-only encoder``: the paper's mean-field guide, q(z_basal | x) (``guide="mean_field"``);
- ``plain learning rate``: ``global_lr_factor=1``.

Usage::

    python experiments/ablation_mask_recovery.py --out figures/ablation_mask_recovery [--seeds 0 1 2] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd
from _common import configure_torch, write_outputs

import samsvae_plus as sp
from samsvae_plus.cli.demo import DEMO_MODEL, DEMO_TRAINING
from samsvae_plus.evaluate.ate import ate_pearson
from samsvae_plus.evaluate.masks import mask_recovery

VARIANTS = {
    "full": {},
    "no dense start": {"train": {"dense_epochs": 0}},
    "x-only encoder": {"model": {"guide": "mean_field"}},
    "plain learning rate": {"train": {"global_lr_factor": 1.0}},
}
SMOKE_SIMULATION = dict(n_perturbations=10, n_genes=100, cells_per_condition=30, n_combinations=5)
SMOKE_TRAINING = dict(max_epochs=6, dense_epochs=2)


def run(seed: int, variant: dict, smoke: bool) -> dict:
    adata = sp.datasets.simulate(seed=seed, **(SMOKE_SIMULATION if smoke else {}))
    truth = adata.uns["simulation"]
    sp.setup_anndata(adata, "condition", "control", context_key="cell_type")
    model = sp.SAMSVAE(adata, **{**DEMO_MODEL, **variant.get("model", {})})
    budget = {**DEMO_TRAINING, **(SMOKE_TRAINING if smoke else {}), **variant.get("train", {})}
    start = time.perf_counter()
    model.train(**budget, seed=seed, progress=False)
    recovery = mask_recovery(
        truth["mask"], model.mask_probabilities().loc[list(truth["perturbations"])]
    )
    ate = model.average_treatment_effect(n_draws=5, n_cells=200, seed=seed)
    history = model.history
    return {
        "mask_f1": recovery.f1,
        "mask_precision": recovery.precision,
        "mask_recall": recovery.recall,
        "ate_pearson": ate_pearson(ate, truth["true_ate"]),
        "validation_elbo": history.validation_elbo[history.best_epoch],
        "train_s": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="figures/ablation_mask_recovery")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--smoke", action="store_true", help="tiny data and budget, for tests")
    args = parser.parse_args()
    configure_torch()
    started = time.perf_counter()
    rows = []
    for name, variant in VARIANTS.items():
        for seed in args.seeds:
            rows.append({"variant": name, "seed": seed, **run(seed, variant, args.smoke)})
            print(json.dumps(rows[-1]), flush=True)
    runs = pd.DataFrame(rows)
    table = runs.groupby("variant", sort=False)[
        ["mask_f1", "ate_pearson", "validation_elbo", "train_s"]
    ].mean()
    meta = {"variants": VARIANTS, "model": DEMO_MODEL, "training": DEMO_TRAINING}
    out = write_outputs(
        args.out, table, runs, {**meta, "smoke": args.smoke, "seeds": args.seeds}, started
    )
    print(table.round(3).to_string())
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
