"""F1, masks against pathways: the best T1 model on each real data set.

"Best" is the row of T1's table (``../t1_models_guides/table.csv`` beside ``--out``, as
``samsvae-plus reproduce`` lays them out) with the highest mean test IWELBO among the
rows that learn sparse masks (SAMS-VAE and SVAE+; CPA-VAE's masks are all ones by
construction and the conditional VAE has none), per data set; without T1's table the
config's ``default_row`` is used. The model is trained on T1's random split (seed = the first seed) and its masks are
compared with each gene-set collection (``mask_pathway_report``: leave-one-out kNN
pathway accuracy with its permutation p-value, within/between-pathway Jaccard, and
per-dimension enrichment), drawn as ``masks_<data>_<collection>`` heatmaps and
``enrichment_<data>_<collection>`` dot plots (``masks_norman._figures``).

Usage::

    python experiments/f1_masks_pathways.py --out figures/f1_masks_pathways [--smoke]
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from _common import load_config, split_record, table_args, training_for, write_outputs
from _data import load_dataset
from _models import fit, row_name
from masks_norman import _figures
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


def main() -> None:
    args, config = table_args(NAME, __doc__)
    t1 = load_config(T1, args.smoke)
    started = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    collections = {name: load_gene_sets(name) for name in config["collections"]}
    seed = args.seeds[0]
    rows, splits, chosen = [], [], {}
    for data in config["datasets"]:
        entry, source = best_row(data, out, t1["rows"], config["default_row"])
        chosen[data] = {"row": row_name(entry), "chosen_by": source}
        adata, _ = load_dataset(t1["datasets"][data], seed)
        split = t1_split(adata, t1, seed)
        splits.append(split_record(split, data=data))
        model, _ = fit(
            adata,
            entry,
            latent_dim=t1["latent_dim"],
            training=training_for(t1, t1["datasets"][data]),
            split=split,
            seed=seed,
            device=args.device,
        )
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
            _figures(out, f"{data}_{name}", seed, probabilities, report, title=title)
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
