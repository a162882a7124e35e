"""``samsvae-plus prep``: write a prediction in the layout challenge scorers expect.

One ``obs`` column of labels, float32 CSR, genes in the reference order, controls
included. The labels keep the user's perturbation key and control label, so the file
scores against the user's own real data with the same keys; ``--vcc`` writes the Virtual
Cell Challenge's ``target_gene`` / ``non-targeting`` instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from samsvae_plus._atomic import atomic_path
from samsvae_plus.challenge.layout import SCORER_KEY, VCC_CONTROL_LABEL
from samsvae_plus.cli.common import check_output_file, read_h5ad
from samsvae_plus.errors import InputError


def read_genes(path: str | Path) -> list[str]:
    """Gene order from an h5ad (its var_names) or a text/CSV file (first column)."""
    path = Path(path)
    if path.suffix == ".h5ad":
        return [str(g) for g in read_h5ad(path, "--genes").var_names]
    if not path.is_file():
        raise InputError(
            f"--genes file {str(path)!r} does not exist or is not a file: check the path"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(
            f"--genes file {str(path)!r} is not UTF-8 text: pass an .h5ad or a text/CSV file "
            "with one gene name per line"
        ) from None
    genes = []
    for line in text.splitlines():
        name = line.split(",")[0].strip()
        if name:
            genes.append(name)
    if not genes:
        raise InputError(f"--genes file {str(path)!r} lists no genes: one gene name per line")
    return genes


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "prep",
        help="write a prediction in the layout challenge scorers expect",
        description=(
            "Rewrite a predicted AnnData for challenge scorers: one obs column of labels "
            "(--perturbation-key, control cells labelled --control-label; with --vcc "
            "obs['target_gene'] and 'non-targeting'), float32 CSR, the reference's genes in "
            "the reference's order, control cells included. Values are kept (raw counts or "
            "log1p)."
        ),
    )
    parser.add_argument("--pred", required=True, help="predicted AnnData (.h5ad)")
    parser.add_argument(
        "--genes",
        required=True,
        help="reference gene order: an .h5ad (its var_names) or a text/CSV file, one per line",
    )
    parser.add_argument(
        "--controls", help="AnnData (.h5ad) whose control cells are appended to the prediction"
    )
    parser.add_argument(
        "--perturbation-key",
        default=SCORER_KEY,
        help="obs column with perturbation labels, in the input and the output "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--control-label",
        default=VCC_CONTROL_LABEL,
        help="label of the control cells, in the input and the output (default: %(default)s)",
    )
    parser.add_argument(
        "--vcc",
        action="store_true",
        help=f"write the Virtual Cell Challenge layout: labels in obs[{SCORER_KEY!r}], "
        f"controls labelled {VCC_CONTROL_LABEL!r}",
    )
    parser.add_argument("--out", required=True, help="h5ad file to write")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from samsvae_plus.challenge.prepare import prepare_prediction

    check_output_file(args.out)
    pred = read_h5ad(args.pred, "--pred")
    controls = read_h5ad(args.controls, "--controls") if args.controls else None
    key, control = (
        (SCORER_KEY, VCC_CONTROL_LABEL) if args.vcc else (args.perturbation_key, args.control_label)
    )
    prepared = prepare_prediction(
        pred,
        read_genes(args.genes),
        perturbation_key=args.perturbation_key,
        control_label=args.control_label,
        controls=controls,
        output_key=key,
        output_control_label=control,
    )
    out = Path(args.out)
    with atomic_path(out) as staged:
        prepared.write_h5ad(staged)
    n_perts = prepared.obs[key].nunique() - 1
    print(
        f"prepared {prepared.n_obs} cells ({n_perts} perturbations + "
        f"{int((prepared.obs[key] == control).sum())} controls) x "
        f"{prepared.n_vars} genes, labelled in obs[{key!r}] -> {out}"
    )
    return 0
