"""T1, models x guides: test IWELBO, mask accuracy and ATE Pearson on three data sets.

Every model/guide pair of ``configs/t1_models_guides.yaml`` trains with one budget on a
random 64/16/20 cell split of each data set (the simulator, ``norman_mcfaline_devel``,
``papalexi2021_thp1``), once per seed. Per row and data set the table gives mean ± sd
over seeds of:

- the test IWELBO (nats per cell);
- mask accuracy: F1 against the simulator's masks (Hungarian-matched dimensions), or
  leave-one-out 3-NN pathway accuracy of the perturbed genes' masks with CORUM and GO-BP
  labels on real data (NaN where fewer than two genes share a set);
- ATE Pearson, all genes and each perturbation's top 20, against the simulator's true
  ATE or the test cells' data ATE per cell type.

Another config of this script runs the same design on other data and settings:
``configs/model_family.yaml`` is the model family on one larger simulation at a longer
budget (20 latent dimensions, 500 epochs, an 80/10/10 split).

Usage::

    python experiments/t1_models_guides.py [--config t1_models_guides] [--out figures/CONFIG] [--seeds 0 1 2] [--smoke]
"""

from __future__ import annotations

import json
import time

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
from _data import load_dataset
from _models import fit, row_name
from _plots import bars
from _scores import ate_scores, mask_scores, model_ate, reference_ate, test_iwelbo

from samsvae_plus.data.splits import Split, random_split
from samsvae_plus.evaluate.gene_sets import load_gene_sets

NAME = "t1_models_guides"
METRICS = [
    "test_iwelbo",
    "mask_f1",
    "pathway_accuracy_corum",
    "pathway_accuracy_gobp",
    "ate_pearson",
    "ate_pearson_top20",
]


def t1_split(adata, config: dict, seed: int) -> Split:
    """T1's random cell split for ``seed`` (the config's ``split_fractions``); F1 and the
    ATE noise ceiling retrace it through this function."""
    return random_split(adata.n_obs, tuple(config["split_fractions"]), seed=seed)


def run_seed(data: str, spec: dict, seed: int, config: dict, collections, device: str):
    """Every row's scores on one data set and seed, and the split they share."""
    adata, truth = load_dataset(spec, seed)
    split = t1_split(adata, config, seed)
    test = adata[split.test].copy()
    reference = reference_ate(adata, split.test, truth)
    rows = []
    for entry in config["rows"]:
        model, seconds = fit(
            adata,
            entry,
            latent_dim=config["latent_dim"],
            training=training_for(config, spec),
            split=split,
            seed=seed,
            device=device,
        )
        ate = model_ate(model, None, truth, **config["ate"], seed=seed)
        row = {
            "data": data,
            "model / guide": row_name(entry),
            "seed": seed,
            "test_iwelbo": test_iwelbo(model, test, config["iwelbo_samples"], seed),
            **mask_scores(model, truth, collections, config["pathway_permutations"], seed),
            **ate_scores(ate, reference),
            "train_s": seconds,
        }
        rows.append(row)
        print(json.dumps(row, default=float), flush=True)
    return rows, [split_record(split, data=data)]


def main() -> None:
    args, config = table_args(NAME, __doc__)
    started = time.perf_counter()
    collections = {name: load_gene_sets(name) for name in config["pathway_collections"]}
    rows, splits = each_seed(
        config,
        args.seeds,
        lambda data, spec, seed: run_seed(data, spec, seed, config, collections, args.device),
    )
    runs = pd.DataFrame(rows).reindex(
        columns=["data", "model / guide", "seed", *METRICS, "train_s"]
    )
    table = seed_summary(runs, ["data", "model / guide"], METRICS)
    write_outputs(
        args.out,
        table,
        runs,
        {**config, "smoke": args.smoke, "seeds": args.seeds, "splits": splits},
        started,
    )
    for metric in ("test_iwelbo", "ate_pearson"):
        save_figure(bars(runs, metric, "model / guide", "data"), args.out, metric)
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
