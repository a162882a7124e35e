"""``samsvae-plus go-embedding``: build the GO gene embedding from an ontology and a GAF."""

from __future__ import annotations

import argparse

from samsvae_plus.cli.common import check_input_file, check_output_file, finish
from samsvae_plus.data.go_recipe import MAX_GENES, MIN_GENES, N_COMPONENTS
from samsvae_plus.errors import InputError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "go-embedding",
        help="build the GO gene embedding that gene_embedding='go' reads",
        description="Build the GO gene embedding (a truncated SVD of the TF-IDF-weighted, "
        "propagated GO annotation matrix) from an OBO ontology and a GAF annotation file. "
        "Without --obo/--gaf, GO's go-basic.obo and goa_human.gaf.gz are downloaded (needs "
        'pip install "samsvae-plus[data]"); without --out, the embedding goes to the cache, '
        "where sp.datasets.go_gene_embedding() finds it.",
    )
    parser.add_argument("--obo", help="ontology file, such as go-basic.obo (default: download)")
    parser.add_argument(
        "--gaf", help="GAF annotation file, such as goa_human.gaf.gz (default: download)"
    )
    parser.add_argument(
        "--out",
        help="output .npz file (default: the cache, where sp.datasets.go_gene_embedding looks)",
    )
    parser.add_argument(
        "--n-components",
        type=int,
        default=N_COMPONENTS,
        help="embedding width (default: %(default)s)",
    )
    parser.add_argument(
        "--min-genes",
        type=int,
        default=MIN_GENES,
        help="drop GO terms with fewer genes than this (default: %(default)s)",
    )
    parser.add_argument(
        "--max-genes",
        type=int,
        default=MAX_GENES,
        help="drop GO terms with more genes than this (default: %(default)s)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from samsvae_plus.data import datasets

    if args.out is not None and not str(args.out).endswith(".npz"):
        raise InputError(f"--out {args.out} should end in .npz")
    if args.n_components <= 0:
        raise InputError("--n-components must be positive")
    if not 0 < args.min_genes <= args.max_genes:
        raise InputError("--min-genes must be positive and at most --max-genes")
    out = check_output_file(args.out or datasets.cache_dir() / datasets.GO_EMBEDDING)
    obo = (
        check_input_file(args.obo, "--obo", "an ontology such as go-basic.obo")
        if args.obo
        else None
    )
    gaf = (
        check_input_file(args.gaf, "--gaf", "a GAF file such as goa_human.gaf.gz")
        if args.gaf
        else None
    )
    # Downloads come after every check, so that a bad flag costs no download.
    obo = obo or datasets.download("go_basic")
    gaf = gaf or datasets.download("goa_human")
    embedding = datasets.build_go_embedding(
        obo,
        gaf,
        n_components=args.n_components,
        min_genes=args.min_genes,
        max_genes=args.max_genes,
    )
    embedding.save(out)
    return finish(
        "go-embedding",
        f"{len(embedding.genes)} genes x {embedding.embedding.shape[1]} dimensions -> {out}",
    )
