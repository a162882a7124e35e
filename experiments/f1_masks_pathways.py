"""F1, masks against pathways: the best T1 model on each real data set.

"Best" is the row of T1's table (``../t1_models_guides/table.csv`` beside ``--out``, as
``samsvae-plus reproduce`` lays them out) with the highest mean test IWELBO among the
rows that learn sparse masks (SAMS-VAE and SVAE+; CPA-VAE's masks are all ones by
construction and the conditional VAE has none), per data set; without T1's table the
config's ``default_row`` is used. The model is trained on T1's random split (seed = the
first seed) with T1's budget, and its masks are compared with each gene-set collection
(``mask_pathway_report``: leave-one-out kNN pathway accuracy with its permutation p-value,
within/between-pathway Jaccard, and per-dimension enrichment), drawn as
``masks_<data>_<collection>`` heatmaps and ``enrichment_<data>_<collection>`` dot plots.

A config with a ``model:`` section names the model instead (its row, latent dimensions
and training; trained with ``train``'s own random split), and its ``datasets`` are data
set entries of its own: ``configs/masks_norman.yaml`` is SAMS-VAE at the former demo's settings
on all of ``norman_mcfaline_devel``.

Usage::

    python experiments/f1_masks_pathways.py [--config f1_masks_pathways] [--out figures/CONFIG] [--smoke]
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from _common import load_config, split_record, table_args, training_for, write_outputs
from _data import load_dataset
from _models import fit, row_name
from _plots import mask_figures
from t1_models_guides import t1_split

from samsvae_plus.evaluate.gene_sets import load_gene_sets
from samsvae_plus.evaluate.pathway_report import mask_pathway_report

NAME = "f1_masks_pathways"
T1 = "t1_models_guides"
# Masks of these models say nothing about pathways: none, or all ones by construction.
WITHOUT_SPARSE_MASKS = ("ConditionalVAE", "CPAVAE")


def best_row(data: str, out: Path, rows: list[dict], default: str) -> tuple[dict, str]:
    """The T1 row to draw for ``data`` and where the choice came from."""
    by_name = {row_name(r): r for r in rows if r["model"] not in WITHOUT_SPARSE_MASKS}
    table_path = out.parent / T1 / "table.csv"
    if table_path.exists():
        table = pd.read_csv(table_path, index_col=0)
        prefix = f"{data} / "
        scores = table.loc[table.index.str.startswith(prefix), "test_iwelbo mean"]
        scores.index = scores.index.str.removeprefix(prefix)
        scores = scores[scores.index.isin(list(by_name))].dropna()
        if len(scores):
            return by_name[scores.idxmax()], f"best test IWELBO in {table_path}"
    return by_name[default], "config default_row (no T1 table)"


def plans(config: dict, out: Path, smoke: bool) -> list[dict]:
    """Per data set: its entry, the model row, where the row came from, and how to train
    it (latent dimensions, training settings, and the split: T1's, or None for train's)."""
    if "model" in config:
        model = config["model"]
        return [
            {
                "data": data,
                "spec": spec,
                "entry": model["row"],
                "chosen_by": "config model",
                "latent_dim": model["latent_dim"],
                "training": model["training"],
                "split_config": None,
            }
            for data, spec in config["datasets"].items()
        ]
    t1 = load_config(T1, smoke)
    result = []
    for data in config["datasets"]:
        entry, source = best_row(data, out, t1["rows"], config["default_row"])
        spec = t1["datasets"][data]
        result.append(
            {
                "data": data,
                "spec": spec,
                "entry": entry,
                "chosen_by": source,
                "latent_dim": t1["latent_dim"],
                "training": training_for(t1, spec),
                "split_config": t1,
            }
        )
    return result


def main() -> None:
    args, config = table_args(NAME, __doc__)
    started = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    collections = {name: load_gene_sets(name) for name in config["collections"]}
    seed = args.seeds[0]
    rows, splits, chosen = [], [], {}
    for plan in plans(config, out, args.smoke):
        data, entry = plan["data"], plan["entry"]
        chosen[data] = {"row": row_name(entry), "chosen_by": plan["chosen_by"]}
        adata, _ = load_dataset(plan["spec"], seed)
        split = (
            None if plan["split_config"] is None else t1_split(adata, plan["split_config"], seed)
        )
        model, _ = fit(
            adata,
            entry,
            latent_dim=plan["latent_dim"],
            training=plan["training"],
            split=split,
            seed=seed,
            device=args.device,
        )
        splits.append(split_record(model.split, data=data))
        probabilities = model.mask_probabilities()
        probabilities.to_csv(out / f"masks_{data}.csv")
        for name, sets in collections.items():
            report = mask_pathway_report(
                probabilities,
                sets,
                collection=name,
                n_permutations=config["permutations"],
                seed=seed,
            )
            rows.append({"data": data, "model / guide": row_name(entry), **report.summary()})
            report.enrichment.to_csv(out / f"enrichment_{data}_{name}.csv", index=False)
            title = f"{row_name(entry)} masks on {data}"
            mask_figures(out, f"{data}_{name}", seed, probabilities, report, title)
    runs = pd.DataFrame(rows)
    table = runs.set_index(runs["data"] + " / " + runs["collection"]).drop(
        columns=["data", "collection"]
    )
    table.index.name = "data / collection"
    meta = {**config, "smoke": args.smoke, "seeds": [seed], "chosen": chosen, "splits": splits}
    write_outputs(out, table, runs, meta, started)
    print(table.to_string())


if __name__ == "__main__":
    main()
