"""``samsvae-plus simulate``: write a simulated Perturb-seq data set with its ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from samsvae_plus._atomic import atomic_path
from samsvae_plus.cli.common import check_output_file, finish
from samsvae_plus.errors import InputError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="simulate counts with known masks, embeddings and ATEs",
        description="Simulate negative-binomial Perturb-seq counts from a sparse additive latent "
        "model; the ground truth is stored in uns['simulation'].",
    )
    parser.add_argument("--out", required=True, help="output .h5ad file")
    parser.add_argument("--n-perturbations", type=int, default=50)
    parser.add_argument("--n-contexts", type=int, default=3)
    parser.add_argument("--n-genes", type=int, default=500)
    parser.add_argument("--latent-dim", type=int, default=10)
    parser.add_argument("--n-combinations", type=int, default=20)
    parser.add_argument("--cells-per-condition", type=int, default=100)
    parser.add_argument("--n-control-cells", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from samsvae_plus.data.simulate import simulate

    out = Path(args.out)
    if out.suffix != ".h5ad":
        raise InputError(f"--out {out} should end in .h5ad")
    check_output_file(out)
    adata = simulate(
        n_perturbations=args.n_perturbations,
        n_contexts=args.n_contexts,
        n_genes=args.n_genes,
        latent_dim=args.latent_dim,
        n_combinations=args.n_combinations,
        cells_per_condition=args.cells_per_condition,
        n_control_cells=args.n_control_cells,
        seed=args.seed,
    )
    with atomic_path(out) as tmp:
        adata.write_h5ad(tmp)
    return finish(
        "simulate",
        f"{adata.n_obs} cells x {adata.n_vars} genes, {args.n_perturbations} perturbations, "
        f"{args.n_combinations} combinations, {args.n_contexts} contexts -> {out}",
    )
