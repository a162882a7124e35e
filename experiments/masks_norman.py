"""Learned masks against pathways on real data: SAMS-VAE on ``norman_mcfaline_devel``.

Trains SAMS-VAE with the demo's settings (10 latent dimensions, shift-aware basal encoder,
60 dense + up to 90 sparse epochs, one particle, lr 2e-3) on the Norman / McFaline-Figueroa
development set, one model per seed, and compares the masks of the single-gene
perturbations with gene-set collections (CORUM complexes and GO biological processes by
default):

- leave-one-out 3-NN pathway accuracy from mask-probability vectors, beside the
  majority-class rate and a label-permutation p-value;
- within- against between-pathway Jaccard similarity of the masks;
- per-dimension hypergeometric enrichment with Benjamini-Hochberg q-values.

Writes ``summary.csv`` and ``table.md`` (one row per seed and collection),
``masks_seed<S>.csv``, ``labels_<collection>.csv``, ``enrichment_<collection>_seed<S>.csv``,
and figures (mask heatmap grouped by pathway, enrichment dot plot) per collection.

Usage::

    python experiments/masks_norman.py --out figures/masks_norman [--seeds 0 1 2] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from _common import configure_torch  # noqa: E402

import samsvae_plus as sp  # noqa: E402
from samsvae_plus._atomic import atomic_write_text  # noqa: E402
from samsvae_plus.cli.demo import DEMO_DEFAULTS, DEMO_MODEL, DEMO_TRAINING  # noqa: E402
from samsvae_plus.evaluate.gene_sets import load_gene_sets  # noqa: E402
from samsvae_plus.evaluate.pathway_report import mask_pathway_report  # noqa: E402

COLUMNS = [
    "seed",
    "collection",
    "n_sets",
    "knn_n_labelled",
    "knn_n_classes",
    "knn_accuracy",
    "knn_majority_rate",
    "knn_p_value",
    "jaccard_within",
    "jaccard_between",
    "jaccard_p_value",
    "n_tests",
    "n_enriched_q0.1",
    "n_dimensions_enriched_q0.1",
]


def norman(smoke: bool):
    adata = sp.datasets.norman_mcfaline_devel()
    if smoke:
        # every condition keeps a few cells, so the registry (and the masks) stay complete
        keep = adata.obs.groupby("condition", observed=True).head(8).index
        adata = adata[keep].copy()
    sp.setup_anndata(adata, "condition", "control", context_key="cell_type")
    return adata


def train(adata, seed: int, smoke: bool) -> tuple[sp.SAMSVAE, float]:
    settings = dict(DEMO_TRAINING)
    model = sp.SAMSVAE(
        adata,
        **DEMO_MODEL,
    )
    if smoke:
        settings.update(max_epochs=3, dense_epochs=1, batch_size=128)
    start = time.perf_counter()
    model.train(**settings, seed=seed, progress=False)
    return model, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="figures/masks_norman")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--collections", nargs="+", default=["corum", "gobp"])
    parser.add_argument("--smoke", action="store_true", help="tiny data and budget, for tests")
    args = parser.parse_args()
    configure_torch()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    adata = norman(args.smoke)
    collections = {name: load_gene_sets(name) for name in args.collections}
    n_permutations = 50 if args.smoke else 2000
    rows, timings = [], {}
    for seed in args.seeds:
        model, seconds = train(adata, seed, args.smoke)
        timings[f"train_seed{seed}"] = seconds
        probabilities = model.mask_probabilities()
        probabilities.to_csv(out / f"masks_seed{seed}.csv")
        for name, sets in collections.items():
            report = mask_pathway_report(
                probabilities, sets, collection=name, n_permutations=n_permutations, seed=seed
            )
            rows.append({"seed": seed, **report.summary()})
            report.enrichment.to_csv(out / f"enrichment_{name}_seed{seed}.csv", index=False)
            if seed == args.seeds[0]:
                labels = pd.DataFrame(
                    {"pathway": report.labels, "knn_prediction": report.accuracy.predictions}
                )
                labels.to_csv(out / f"labels_{name}.csv")
                _figures(out, name, seed, probabilities, report)

    summary = pd.DataFrame(rows)[COLUMNS]
    summary.to_csv(out / "summary.csv", index=False)
    atomic_write_text(out / "table.md", _markdown(summary))
    atomic_write_text(
        out / "results.json",
        json.dumps(
            {
                "n_cells": adata.n_obs,
                "n_perturbations": len(model.registry.perturbations),
                "settings": DEMO_DEFAULTS,
                "seconds": timings,
                "smoke": args.smoke,
            },
            indent=1,
        )
        + "\n",
    )
    print(_markdown(summary))


def _figures(
    out: Path, name: str, seed: int, probabilities, report, title: str = "SAMS-VAE masks on Norman"
) -> None:
    """The mask heatmap grouped by pathway and the enrichment dot plot (PNG and PDF)."""
    fig = sp.pl.masks(probabilities, groups=report.labels, return_fig=True)
    fig.suptitle(f"{title}, grouped by {name} (seed {seed})", fontsize=9)
    for suffix in ("png", "pdf"):
        fig.savefig(out / f"masks_{name}.{suffix}", dpi=150, bbox_inches="tight")
    plt.close(fig)
    if len(report.enrichment):
        fig = sp.pl.enrichment(report.enrichment, return_fig=True)
        for suffix in ("png", "pdf"):
            fig.savefig(out / f"enrichment_{name}.{suffix}", dpi=150, bbox_inches="tight")
        plt.close(fig)


def _markdown(summary: pd.DataFrame) -> str:
    lines = [
        "| seed | sets | labelled / classes | kNN accuracy | majority rate | p | "
        "Jaccard within / between (p) | enriched tests (q <= 0.1) / dims |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in summary.to_dict(orient="records"):
        lines.append(
            f"| {r['seed']} | {r['collection']} ({r['n_sets']}) | {r['knn_n_labelled']} / "
            f"{r['knn_n_classes']} | {r['knn_accuracy']:.3f} | {r['knn_majority_rate']:.3f} | "
            f"{r['knn_p_value']:.3f} | {r['jaccard_within']:.3f} / {r['jaccard_between']:.3f} "
            f"({r['jaccard_p_value']:.3f}) | {r['n_enriched_q0.1']} / "
            f"{r['n_dimensions_enriched_q0.1']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
