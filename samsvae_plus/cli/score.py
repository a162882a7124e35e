"""``samsvae-plus score``: score a prediction as the Virtual Cell Challenge does.

Writes one JSON file with the per-perturbation metrics, their means, the baseline's means
and the baseline-normalised score (cell-eval 0.8.x ``vcc`` profile numbers).

Files are read with h5py alone where their layout allows
(:func:`~samsvae_plus.challenge.files.read_scorer_file`), so a run imports neither
anndata nor pandas; other files are read with anndata. The numbers are the same either way.
"""

from __future__ import annotations

import argparse
import json
import time

from samsvae_plus._atomic import atomic_write_text
from samsvae_plus.challenge.layout import SCORER_KEY, VCC_CONTROL_LABEL
from samsvae_plus.cli.common import check_input_file, check_output_file, read_h5ad


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "score",
        help="score a prediction with the Virtual Cell Challenge metrics (PDS, DES, MAE)",
        description=(
            "Score predicted against real perturbation responses as the Virtual Cell "
            "Challenge does (cell-eval 0.8.x, vcc profile): perturbation discrimination "
            "(PDS), differential-expression overlap (DES) and MAE, and with a baseline "
            "the normalised score. Counts and log1p input are both accepted."
        ),
    )
    parser.add_argument("--pred", required=True, help="predicted AnnData (.h5ad)")
    parser.add_argument("--real", required=True, help="real AnnData (.h5ad)")
    base = parser.add_mutually_exclusive_group()
    base.add_argument(
        "--reference",
        help="training AnnData (.h5ad) from which the cell-mean baseline is built",
    )
    base.add_argument("--baseline", help="an already built baseline prediction (.h5ad)")
    parser.add_argument(
        "--perturbation-key",
        default=SCORER_KEY,
        help="obs column with perturbation labels in every file, e.g. the one train and "
        "predict used; the default is the challenge's (default: %(default)s)",
    )
    parser.add_argument(
        "--control-label",
        default=VCC_CONTROL_LABEL,
        help="label of the control cells in every file (default: %(default)s)",
    )
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.set_defaults(run=run)
    return parser


def read_scorer_input(path: str, what: str, perturbation_key: str):
    """The scorer's parts of an h5ad file (h5py only), or the AnnData where that fails."""
    from samsvae_plus.challenge.files import read_scorer_file

    checked = check_input_file(path, what)
    light = read_scorer_file(checked, perturbation_key)
    return light if light is not None else read_h5ad(checked, what)


def run(args: argparse.Namespace) -> int:
    from samsvae_plus.challenge.score import score_tables

    start = time.perf_counter()
    check_output_file(args.out)
    key = args.perturbation_key
    pred = read_scorer_input(args.pred, "--pred", key)
    real = read_scorer_input(args.real, "--real", key)
    reference = read_scorer_input(args.reference, "--reference", key) if args.reference else None
    baseline = read_scorer_input(args.baseline, "--baseline", key) if args.baseline else None
    result = score_tables(
        pred,
        real,
        perturbation_key=key,
        control_label=args.control_label,
        baseline=baseline,
        reference=reference,
    )
    atomic_write_text(args.out, json.dumps(result.to_dict(), indent=1) + "\n")
    line = (
        f"scored {len(result.labels)} perturbations in {time.perf_counter() - start:.1f} s: "
        + summary_means(result.mean, result.baseline_mean)
    )
    if result.score is not None:
        line += f", avg_score {result.score['avg_score']:.4f}"
    print(f"{line} -> {args.out}")
    return 0


# The means the summary line shows, as (name in the line, metric).
SUMMARY_METRICS = (("PDS", "discrimination_score_l1"), ("DES", "overlap_at_N"), ("MAE", "mae"))


def summary_means(mean: dict, baseline_mean: dict | None) -> str:
    """``PDS 0.61 (baseline 0.55), ...``: the model's means with the baseline's beside them,
    so that the line cannot hide a baseline that did better."""
    parts = []
    for name, metric in SUMMARY_METRICS:
        part = f"{name} {mean[metric]:.4f}"
        if baseline_mean is not None:
            part += f" (baseline {baseline_mean[metric]:.4f})"
        parts.append(part)
    return ", ".join(parts)
