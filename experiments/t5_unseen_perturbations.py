"""T5, unseen single perturbations: predict genes never seen perturbed from their gene
embedding.

Per data set and seed a fifth of the perturbed genes is held out
(``splits.held_out_perturbations``; on real data only genes with a GO embedding are
candidates): every cell carrying one is a test cell. SAMS-VAE with the gene-embedding
prior is compared with the free Normal prior and with the mean effect of the seen
perturbations (:func:`score_priors`), by ATE Pearson on the held-out conditions: against
the simulator's truth (its genes' embeddings are the simulator's own), or the held-out
cells' data ATE per cell type (GO embeddings). Mean ± sd over seeds.

``configs/unseen_perturbations.yaml`` runs the same design on one simulation of 60
perturbations at the former demo's budget.

Usage::

    python experiments/t5_unseen_perturbations.py [--config t5_unseen_perturbations] [--out figures/CONFIG] [--smoke]
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from _common import (
    each_seed,
    save_figure,
    seed_summary,
    split_record,
    table_args,
    training_for,
    write_outputs,
)
from _data import CONTEXT, CONTROL, KEY, load_dataset
from _plots import bars
from _scores import model_ate, reference_ate

import samsvae_plus as sp
from samsvae_plus.data.splits import held_out_perturbations
from samsvae_plus.evaluate.ate import ate_pearson, data_ate

NAME = "t5_unseen_perturbations"
METHODS = ["gene_embedding_prior", "normal_prior", "mean_of_perturbations"]


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


def run_seed(data: str, spec: dict, seed: int, config: dict, device: str):
    adata, truth = load_dataset(spec, seed)
    if truth is not None:
        embedding, candidates = truth["perturbation_embedding"], None
    else:
        embedding = "go"
        candidates = set(sp.datasets.go_gene_embedding().index)
    conditions = adata.obs[KEY].to_numpy(dtype=str)
    split = held_out_perturbations(
        conditions, fraction=config["held_out_fraction"], candidates=candidates, seed=seed
    )
    held = sorted(set(conditions[split.test]))
    scores = score_priors(
        adata,
        truth,
        split,
        held,
        latent_dim=spec.get("latent_dim", config["latent_dim"]),
        training=training_for(config, spec),
        seed=seed,
        gene_embedding=embedding,
        device=device,
    )
    rows = [
        {"data": data, "method": m, "seed": seed, "ate_pearson": scores[m], "n_held_out": len(held)}
        for m in METHODS
    ]
    print(rows, flush=True)
    return rows, [split_record(split, data=data, held_out_conditions=held)]


def main() -> None:
    args, config = table_args(NAME, __doc__)
    started = time.perf_counter()
    rows, splits = each_seed(
        config,
        args.seeds,
        lambda data, spec, seed: run_seed(data, spec, seed, config, args.device),
    )
    runs = pd.DataFrame(rows)
    table = seed_summary(runs, ["data", "method"], ["ate_pearson", "n_held_out"])
    meta = {**config, "smoke": args.smoke, "seeds": args.seeds, "splits": splits}
    write_outputs(args.out, table, runs, meta, started)
    save_figure(bars(runs, "ate_pearson", "method", "data"), args.out, "ate_pearson")
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
