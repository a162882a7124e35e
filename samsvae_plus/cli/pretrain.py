"""``samsvae-plus pretrain``: masked-expression pretraining of the transformer encoder."""

from __future__ import annotations

import argparse

from samsvae_plus._atomic import atomic_directory
from samsvae_plus.cli.common import add_output_args, check_output_dir, finish, read_h5ad, write_json
from samsvae_plus.nn.encoder_options import ARCHITECTURE, DEFAULT_TOKENS, EncoderOptions

WEIGHTS_FILE = "encoder_weights.pt"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "pretrain",
        help="pretrain the transformer basal encoder on unlabelled cells",
        description="Pretrain the gene-token transformer by masked-expression prediction on "
        f"the cells of an h5ad (no labels needed) and write OUT/{WEIGHTS_FILE}; a model loads "
        "it with --basal-encoder transformer --encoder-weights OUT/" + WEIGHTS_FILE + ".",
    )
    parser.add_argument("--data", required=True, help="h5ad file with raw counts")
    parser.add_argument("--layer", default=None, help="layer with raw counts (default: X)")
    add_output_args(parser)
    model = parser.add_argument_group("encoder")
    model.add_argument(
        "--gene-embedding",
        default=EncoderOptions.gene_embedding,
        help="gene vectors of the tokens: 'go', 'learned' or 'random'",
    )
    model.add_argument("--n-tokens", type=int, default=DEFAULT_TOKENS, help="genes read per cell")
    model.add_argument("--d-model", type=int, default=ARCHITECTURE["d_model"], help="token width")
    model.add_argument(
        "--n-heads", type=int, default=ARCHITECTURE["n_heads"], help="attention heads per layer"
    )
    model.add_argument(
        "--n-layers", type=int, default=ARCHITECTURE["n_layers"], help="transformer layers"
    )
    training = parser.add_argument_group("training")
    training.add_argument(
        "--mask-fraction", type=float, default=0.15, help="share of tokens hidden per cell"
    )
    training.add_argument("--max-epochs", type=int, default=20, help="passes over the cells")
    training.add_argument("--batch-size", type=int, default=256, help="cells per step")
    training.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    training.add_argument("--seed", type=int, default=0, help="seed of the masks and batches")
    training.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda'")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from samsvae_plus.inference.pretrain import pretrain_encoder

    out = check_output_dir(args.out, args.overwrite)
    adata = read_h5ad(args.data)
    with atomic_directory(out) as tmp:
        result = pretrain_encoder(
            adata,
            tmp / WEIGHTS_FILE,
            layer=args.layer,
            gene_embedding=args.gene_embedding,
            n_tokens=args.n_tokens,
            transformer={
                "d_model": args.d_model,
                "n_heads": args.n_heads,
                "n_layers": args.n_layers,
            },
            mask_fraction=args.mask_fraction,
            max_epochs=args.max_epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            device=args.device,
        )
        write_json(tmp / "pretraining.json", {**result.to_dict(), "path": str(out / WEIGHTS_FILE)})
    losses = result.validation_loss
    return finish(
        "pretrain",
        f"{adata.n_obs} cells, {len(losses) - 1} epochs, masked-expression loss "
        f"{losses[0]:.3f} -> {losses[result.best_epoch]:.3f} (best epoch {result.best_epoch}) "
        f"-> {out / WEIGHTS_FILE}",
    )
