"""``samsvae-plus evaluate``: held-out IWELBO, ATE checks and masks against pathways."""

from __future__ import annotations

import argparse
import re
from functools import partial
from pathlib import Path

from samsvae_plus._atomic import atomic_directory
from samsvae_plus.cli.common import add_output_args, check_output_dir, finish, read_h5ad, write_json
from samsvae_plus.cli.optional_outputs import OptionalOutputs
from samsvae_plus.errors import InputError

# Kept here rather than imported from the model, so that building the parser stays light.
SPLITS = ("train", "validation", "test", "all")
BASALS = ("prior", "encoder")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a trained model: IWELBO, ATE checks, masks against pathways",
        description="Evaluate a saved model on the cells of one part of its saved split: "
        "importance-weighted ELBO, ATE posterior-predictive check (agreement and calibration, "
        "per split of perturbations), masks against gene-set collections, and figures. Writes "
        "metrics.json, ate.csv, ate_per_perturbation.csv, masks.csv, enrichment_<sets>.csv and "
        "figures/ to --out. A figure or optional report that fails is logged, listed under "
        "not_written in metrics.json and left out; the rest is written.",
    )
    parser.add_argument("--model", required=True, help="directory of a saved model (train --out)")
    parser.add_argument("--data", required=True, help="the h5ad file the model was trained on")
    parser.add_argument(
        "--split", default="test", help="cells to evaluate: train, validation, test or all"
    )
    parser.add_argument(
        "--gene-sets",
        nargs="*",
        default=[],
        metavar="SETS",
        help="gene-set collections (replogle, corum, gobp, pathway) or files (.json, .csv, .gmt) "
        "to compare the masks with",
    )
    parser.add_argument("--data-dir", default=None, help="data directory of named collections")
    parser.add_argument("--n-samples", type=int, default=100, help="importance samples (IWELBO)")
    parser.add_argument("--n-draws", type=int, default=100, help="posterior draws (ATE check)")
    parser.add_argument(
        "--n-cells", type=int, default=200, help="cells per context and draw of the model ATE"
    )
    parser.add_argument(
        "--by-context", action="store_true", help="ATE rows per (context, condition)"
    )
    parser.add_argument(
        "--basal", default="prior", help="basal states from the 'prior' or the 'encoder'"
    )
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="'cpu', 'cuda' or 'auto'")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    add_output_args(parser)
    parser.set_defaults(run=run)


def _set_name(source: str) -> str:
    """A file-name-safe name of a gene-set source (a collection name, or a file's stem)."""
    stem = Path(source).name.split(".")[0] if ("/" in source or "." in source) else source
    return re.sub(r"[^A-Za-z0-9_-]+", "_", stem) or "sets"


def run(args: argparse.Namespace) -> int:
    if args.split not in SPLITS:
        raise InputError(f"--split {args.split!r} is not a split; choose one of {list(SPLITS)}")
    if args.basal not in BASALS:
        raise InputError(f"--basal {args.basal!r} is not available; choose one of {list(BASALS)}")
    if min(args.n_samples, args.n_draws, args.n_cells, args.batch_size) < 1:
        raise InputError("--n-samples, --n-draws, --n-cells and --batch-size must be positive")
    out = check_output_dir(args.out, args.overwrite)

    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    import pandas as pd

    from samsvae_plus import plotting
    from samsvae_plus.evaluate.ate_check import perturbation_splits
    from samsvae_plus.evaluate.gene_sets import load_gene_sets
    from samsvae_plus.evaluate.masks import mask_recovery
    from samsvae_plus.evaluate.pathway_report import mask_pathway_report
    from samsvae_plus.model.base import PerturbationModel

    # Every input is read and checked before any long computation.
    names = [_set_name(s) for s in args.gene_sets]
    if len(set(names)) != len(names):
        raise InputError(f"--gene-sets names repeat ({names}); pass each collection once")
    gene_sets = {
        name: load_gene_sets(s, args.data_dir)
        for name, s in zip(names, args.gene_sets, strict=True)
    }
    model = PerturbationModel.load(args.model, device=args.device)
    adata = read_h5ad(args.data)
    rows = model.split_indices(args.split, adata.n_obs)
    cells = adata[rows].copy()
    # Checked once, before the long computations, and shared by the verbs below.
    checked_cells = model.check_cells(cells)
    controls = model.check_cells(adata, controls=True) if args.basal == "encoder" else None
    registry = model.registry
    progress = not args.no_progress

    bound = model.iwelbo(
        checked_cells,
        args.n_samples,
        seed=args.seed,
        batch_size=args.batch_size,
        per_cell=True,
        progress=progress,
    )
    splits = perturbation_splits(np.asarray(adata.obs[registry.perturbation_key]), model.split)
    check = model.check_ate(
        checked_cells,
        splits=splits,
        by_context=args.by_context,
        basal=args.basal,
        adata_controls=controls,
        n_draws=args.n_draws,
        n_cells=args.n_cells,
        seed=args.seed,
        progress=progress,
    )
    metrics = {
        "model": args.model,
        "data": args.data,
        "split": args.split,
        "n_cells": int(cells.n_obs),
        "iwelbo": {
            "mean": float(bound.mean()),
            "standard_error": float(bound.std(ddof=1) / np.sqrt(len(bound)))
            if len(bound) > 1
            else None,
            "n_samples": args.n_samples,
        },
        "ate": check.to_dict(),
        "options": {k: v for k, v in vars(args).items() if k != "run"},
    }
    # From here on every part is optional: one that fails is logged and left out, and the
    # IWELBO and ATE check above are written all the same (cli/optional_outputs.py).
    outputs = OptionalOutputs("evaluate")
    truth = adata.uns.get("simulation")
    truth_check = None
    if isinstance(truth, dict) and isinstance(truth.get("true_ate"), pd.DataFrame):
        # The simulator's truth is a Monte Carlo estimate (common random numbers, a fixed
        # number of cells per context). Drawing the model's ATE the same way gives every
        # draw the same Monte Carlo error, so the intervals allow for the truth's own error.
        ate_cells = truth.get("params", {}).get("ate_cells", args.n_cells)
        truth_check = outputs.attempt(
            "ate_vs_truth",
            lambda: model.check_ate(
                reference=truth["true_ate"],
                splits=splits,
                n_draws=args.n_draws,
                n_cells=int(ate_cells),
                seed=args.seed,
                progress=progress,
            ),
        )
        if truth_check is not None:
            metrics["ate_vs_truth"] = truth_check.to_dict()

    has_masks = hasattr(model.module["guide"], "mask_probabilities")
    probabilities = model.mask_probabilities() if has_masks else None
    reports = {}
    if probabilities is not None:
        if isinstance(truth, dict) and "mask" in truth:
            recovery = outputs.attempt(
                "mask_recovery",
                lambda: mask_recovery(
                    truth["mask"], probabilities.loc[[str(p) for p in truth["perturbations"]]]
                ).to_dict(),
            )
            if recovery is not None:
                metrics["mask_recovery"] = recovery
        for name, sets in gene_sets.items():
            report = outputs.attempt(
                f"gene-set report {name}",
                partial(mask_pathway_report, probabilities, sets, collection=name, seed=args.seed),
            )
            if report is not None:
                reports[name] = report
        metrics["masks"] = [report.summary() for report in reports.values()]
    else:
        metrics["masks"] = None

    with atomic_directory(out) as tmp:
        check.table.to_csv(tmp / "ate.csv", index=False)
        check.per_perturbation.to_csv(tmp / "ate_per_perturbation.csv")
        if truth_check is not None:
            truth_check.table.to_csv(tmp / "ate_vs_truth.csv", index=False)
        (tmp / "figures").mkdir()
        outputs.figure(
            tmp,
            "figures/ate_scatter.png",
            partial(plotting.ate_scatter, check.reference, check.prediction, return_fig=True),
        )
        outputs.figure(
            tmp, "figures/calibration.png", partial(_calibration_figure, check, truth_check)
        )
        if truth_check is not None:
            outputs.figure(
                tmp,
                "figures/ate_scatter_truth.png",
                partial(
                    plotting.ate_scatter,
                    truth_check.reference,
                    truth_check.prediction,
                    xlabel="true ATE",
                    return_fig=True,
                ),
            )
        if model.history is not None:
            outputs.figure(
                tmp,
                "figures/training.png",
                partial(plotting.training_curves, model.history, return_fig=True),
            )
        if probabilities is not None:
            table = probabilities.copy()
            for name, report in reports.items():
                table[f"pathway_{name}"] = report.labels.reindex(table.index)
                report.enrichment.to_csv(tmp / f"enrichment_{name}.csv", index=False)
                outputs.figure(
                    tmp,
                    f"figures/masks_{name}.png",
                    partial(plotting.masks, probabilities, groups=report.labels, return_fig=True),
                )
                outputs.figure(
                    tmp,
                    f"figures/enrichment_{name}.png",
                    partial(plotting.enrichment, report.enrichment, return_fig=True),
                )
            table.to_csv(tmp / "masks.csv")
            outputs.figure(
                tmp, "figures/masks.png", partial(plotting.masks, probabilities, return_fig=True)
            )
        if outputs.failed:
            metrics["not_written"] = outputs.failed
        # Last, so that it records what could not be written.
        write_json(tmp / "metrics.json", metrics)

    ate_all = check.metrics.loc["all"]
    return finish(
        "evaluate",
        f"{cells.n_obs} {args.split} cells: IWELBO {bound.mean():.2f} nats/cell "
        f"(S={args.n_samples}), ATE Pearson {ate_all['pearson']:.3f}, "
        f"{ate_all['coverage']:.2f} of data ATEs inside the {check.level:.0%} "
        f"{check.interval} intervals -> {out}{outputs.summary()}",
    )


def _calibration_figure(check, truth_check):
    """Calibration against the data's ATE and, on simulated data, the true ATE."""
    from samsvae_plus import plotting

    ax = plotting.calibration(check.calibration, label=f"data ATE ({check.interval})")
    if truth_check is not None:
        plotting.calibration(
            truth_check.calibration, label=f"true ATE ({truth_check.interval})", ax=ax
        )
    return ax.figure
