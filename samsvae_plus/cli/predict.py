"""``samsvae-plus predict``: counterfactual cells from a saved model, in the training keys.

The output goes straight into ``samsvae-plus score`` with the keys ``train`` was given:
its labels are in the training data's perturbation column, written as the training data
writes them, and it holds the control cells.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from samsvae_plus._atomic import atomic_path
from samsvae_plus.cli.common import check_input_file, check_output_file, finish, read_h5ad
from samsvae_plus.errors import InputError

# --perturbations ALL: the control and every condition seen in training
ALL = "all"
FACTUAL = ("observed", "model")  # model.prediction_output.FACTUAL_SOURCES, without torch


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict perturbed cells from control cells with a saved model",
        description="Load a saved model (train --out), infer each control cell's basal state "
        "and sample its counts under each perturbation. The output keeps the training data's "
        "perturbation key and control label, includes the control cells and is ready for "
        "`samsvae-plus score` with the same keys.",
    )
    parser.add_argument("--model", required=True, help="directory of a saved model (train --out)")
    parser.add_argument(
        "--controls",
        required=True,
        help="h5ad with the model's genes and raw counts; its cells labelled with the control "
        "label in the training perturbation column are the source cells (all cells, where it "
        "has no such column)",
    )
    requested = parser.add_mutually_exclusive_group()
    requested.add_argument(
        "--perturbations",
        nargs="+",
        metavar="LABEL",
        help="conditions to predict, e.g. KLF1 KLF1+MAP2K6, or 'all' (default: all, the "
        "control and every condition seen in training); the control is always added",
    )
    requested.add_argument(
        "--perturbations-file", help="text file of conditions to predict, one label per line"
    )
    parser.add_argument(
        "--n-draws",
        type=int,
        default=1,
        help="posterior draws, each a copy of every cell (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the draws (default: %(default)s)"
    )
    parser.add_argument(
        "--factual",
        choices=FACTUAL,
        default="observed",
        help="a control cell under the control label: its observed counts, or counts drawn by "
        "the model (default: %(default)s)",
    )
    parser.add_argument("--batch-size", type=int, default=1024, help="cells encoded at a time")
    parser.add_argument("--device", default="cpu", help="'cpu', 'cuda' or 'auto'")
    parser.add_argument("--out", required=True, help="h5ad file to write")
    parser.set_defaults(run=run)


def requested_labels(args: argparse.Namespace) -> list[str] | None:
    """The labels asked for, or None for all of them."""
    if args.perturbations_file is not None:
        path = check_input_file(
            args.perturbations_file, "--perturbations-file", "a text file of labels, one per line"
        )
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise InputError(
                f"--perturbations-file {path} is not UTF-8 text; write one label per line"
            ) from None
        labels = [line.strip() for line in lines if line.strip()]
        if not labels:
            raise InputError(f"--perturbations-file {path} lists no labels; write one per line")
        return labels
    if args.perturbations is None or args.perturbations == [ALL]:
        return None
    if ALL in args.perturbations:
        raise InputError(f"--perturbations {ALL} stands alone; drop it or the other labels")
    return args.perturbations


def control_cells(adata, registry):
    """The source cells of ``--controls``: its control cells, or every cell where it has no
    column of condition labels."""
    from samsvae_plus.data.checked import control_rows  # here: the parser stays cheap

    if registry.perturbation_key not in adata.obs:
        return adata
    return adata[control_rows(adata.obs[registry.perturbation_key], registry)].copy()


def run(args: argparse.Namespace) -> int:
    out = check_output_file(args.out)
    if Path(out).suffix != ".h5ad":
        raise InputError(f"--out {out} should end in .h5ad")
    for flag, value in (("--n-draws", args.n_draws), ("--batch-size", args.batch_size)):
        if value < 1:
            raise InputError(f"{flag} must be a positive integer, got {value}")
    labels = requested_labels(args)

    from samsvae_plus.model.base import PerturbationModel

    model = PerturbationModel.load(args.model, device=args.device)
    sources = control_cells(read_h5ad(args.controls, "--controls"), model.registry)
    prediction = model.predict(
        sources,
        labels,
        n_draws=args.n_draws,
        seed=args.seed,
        batch_size=args.batch_size,
        factual=args.factual,
    )
    with atomic_path(out) as staged:
        prediction.write_h5ad(staged)
    registry = model.registry
    n_conditions = prediction.obs[registry.perturbation_key].nunique()
    return finish(
        "predict",
        f"{sources.n_obs} control cells x {n_conditions} conditions x {args.n_draws} draw(s) = "
        f"{prediction.n_obs} cells x {prediction.n_vars} genes, labelled in "
        f"obs[{registry.perturbation_key!r}] (control {registry.control_label!r}) -> {out}",
    )
