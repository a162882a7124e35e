"""Unseen single perturbations on the simulator: prediction through a gene-embedding prior.

The simulator draws an embedding ``g_t`` for every perturbed gene and makes masks and
effects smooth functions of it (``simulate(perturbation_embedding_dim=16)``). A fifth of
the genes are held out: no cell carrying them is trained on. For each held-out gene we
compare with the simulator's true ATE:

- SAMS-VAE with ``perturbation_prior="gene_embedding"`` (predicts from the learned prior);
- SAMS-VAE with the free Normal prior (predicts from an uninformative prior);
- "mean of all perturbations": every held-out gene gets the mean training-data ATE of the
  seen single perturbations.

Usage::

    python experiments/unseen_perturbations.py --out figures/unseen_perturbations [--seeds 0 1 2] [--smoke]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from _common import configure_torch, write_seed_summary
from _data import CONTEXT, CONTROL, KEY
from _scores import model_ate, reference_ate

import samsvae_plus as sp
from samsvae_plus.cli.demo import DEMO_TRAINING
from samsvae_plus.data.splits import held_out_perturbations
from samsvae_plus.evaluate.ate import ate_pearson, data_ate

SIMULATION = dict(
    n_perturbations=60,
    n_combinations=0,
    cells_per_condition=80,
    latent_dim=10,
    perturbation_embedding_dim=16,
)
SMOKE_SIMULATION = dict(
    n_perturbations=10,
    n_combinations=0,
    cells_per_condition=20,
    latent_dim=4,
    n_genes=60,
    ate_cells=50,
    perturbation_embedding_dim=8,
)
TRAINING = {**DEMO_TRAINING, "progress": False}
SMOKE_TRAINING = dict(max_epochs=4, dense_epochs=2, n_particles=1, batch_size=128, progress=False)


def mean_effect(seen: pd.DataFrame, labels: pd.Index) -> pd.DataFrame:
    """Every held-out row gets the mean ATE of the seen perturbations (of its own context
    when the tables are indexed by (context, condition))."""
    if isinstance(labels, pd.MultiIndex):
        means = seen.groupby(level=0).mean()
        rows = [means.loc[context].to_numpy() for context, _ in labels]
    else:
        rows = [seen.mean(axis=0).to_numpy()] * len(labels)
    return pd.DataFrame(np.array(rows), index=labels, columns=seen.columns)


def score_priors(
    adata,
    truth: dict | None,
    split,
    held: list[str],
    *,
    latent_dim: int,
    training: dict,
    seed: int,
    gene_embedding,
    device: str = "auto",
) -> dict:
    """ATE Pearson on the held-out conditions of the gene-embedding prior, the free Normal
    prior and the mean-of-perturbations baseline, against the simulator's truth or the
    data ATE of the held-out cells (per context)."""
    reference = reference_ate(adata, np.concatenate([split.test, split.train]), truth)
    result = {}
    for name, prior in (("gene_embedding_prior", "gene_embedding"), ("normal_prior", "normal")):
        model = sp.SAMSVAE(
            adata,
            latent_dim=latent_dim,
            guide="correlated",
            perturbation_prior=prior,
            gene_embedding=gene_embedding,
        )
        model.train(**training, split=split, seed=seed, device=device)
        predicted = model_ate(model, held, truth, n_draws=10, n_cells=200, seed=seed)
        result[name] = ate_pearson(predicted, reference)
    seen = data_ate(adata[split.train], KEY, CONTROL, context_key=CONTEXT, by_context=truth is None)
    labels = predicted.index.intersection(reference.index)
    result["mean_of_perturbations"] = ate_pearson(mean_effect(seen, labels), reference)
    return result


def run(seed: int, smoke: bool) -> dict:
    adata = sp.datasets.simulate(**(SMOKE_SIMULATION if smoke else SIMULATION), seed=seed)
    simulation = adata.uns["simulation"]
    sp.setup_anndata(adata, "condition", "control", context_key="cell_type")
    split = held_out_perturbations(adata.obs["condition"], fraction=0.2, seed=seed)
    held = sorted(set(adata.obs["condition"].to_numpy()[split.test]))
    result = {"seed": seed, "n_held_out": len(held)}
    result |= score_priors(
        adata,
        simulation,
        split,
        held,
        latent_dim=simulation["params"]["latent_dim"],
        training=SMOKE_TRAINING if smoke else TRAINING,
        seed=seed,
        gene_embedding=simulation.get("perturbation_embedding"),
    )
    result["split"] = split.to_dict() | {"held_out_conditions": held}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="figures/unseen_perturbations")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--smoke", action="store_true", help="tiny data and budget, for tests")
    args = parser.parse_args()
    configure_torch()
    warnings.filterwarnings("ignore", message=".*have no embedding.*")
    started = time.perf_counter()
    results = [run(seed, args.smoke) for seed in args.seeds]
    write_seed_summary(
        args,
        results,
        ["gene_embedding_prior", "normal_prior", "mean_of_perturbations"],
        "ATE Pearson on held-out genes",
        {"simulation": SIMULATION, "training": TRAINING},
        started,
    )


if __name__ == "__main__":
    main()
