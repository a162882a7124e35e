"""``samsvae-plus train``: register an h5ad, fit SAMS-VAE and save it with its history."""

from __future__ import annotations

import argparse
import os
import shutil
from functools import partial
from pathlib import Path

from samsvae_plus._atomic import atomic_directory
from samsvae_plus.cli.common import add_output_args, check_output_dir, finish, read_h5ad, write_json
from samsvae_plus.cli.optional_outputs import OptionalOutputs
from samsvae_plus.errors import DivergenceError, InputError

# Modelling code (torch, pyro, matplotlib) is imported inside the functions that use it,
# so that building the parser for another subcommand stays light.


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """Model and training options shared by ``train`` and ``demo``."""
    model = parser.add_argument_group("model")
    model.add_argument("--latent-dim", type=int, default=20)
    model.add_argument(
        "--guide", default="mean_field", help="variational family (default mean_field)"
    )
    model.add_argument(
        "--basal-sees-shift",
        action="store_true",
        help="mean-field guide: let the z_basal encoder read the cell's expected latent shift",
    )
    model.add_argument(
        "--mask-prior", type=float, default=0.01, help="prior mask probability alpha"
    )
    model.add_argument(
        "--basal-encoder",
        default="mlp",
        help="encoder of q(z_basal): 'mlp' or 'transformer' (gene tokens; default mlp)",
    )
    model.add_argument(
        "--gene-embedding",
        default="go",
        help="transformer: gene vectors of the tokens, 'go', 'learned' or 'random' (default go)",
    )
    model.add_argument(
        "--n-tokens", type=int, default=None, help="transformer: genes read per cell (default 256)"
    )
    model.add_argument(
        "--encoder-weights",
        default=None,
        help="transformer: pretrained weights written by samsvae-plus pretrain",
    )
    training = parser.add_argument_group("training")
    training.add_argument("--max-epochs", type=int, default=400)
    training.add_argument(
        "--dense-epochs",
        type=int,
        default=None,
        help="epochs with masks pinned on (default: 2/5 of --max-epochs)",
    )
    training.add_argument("--batch-size", type=int, default=512)
    training.add_argument("--n-particles", type=int, default=5)
    training.add_argument("--lr", type=float, default=3e-4)
    training.add_argument(
        "--lr-scaling",
        choices=("sqrt", "linear"),
        default=None,
        help="scale --lr from 512 cells per step to --batch-size (default: as given)",
    )
    training.add_argument(
        "--compile-kernels",
        action="store_true",
        help="compile the fused NB log-probability with torch.compile (GPU speed)",
    )
    training.add_argument("--seed", type=int, default=0)
    training.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda'")
    training.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="fit SAMS-VAE to an h5ad file",
        description="Register an AnnData of raw counts, fit SAMS-VAE by SVI and save the model "
        "(load it with samsvae_plus.SAMSVAE.load(OUT)).",
    )
    parser.add_argument("--data", required=True, help="h5ad file with raw counts")
    parser.add_argument("--perturbation-key", required=True, help="obs column of condition labels")
    parser.add_argument("--control-label", required=True, help="label of control cells")
    parser.add_argument("--context-key", default=None, help="obs column of cell type / line")
    parser.add_argument("--layer", default=None, help="layer with raw counts (default: X)")
    parser.add_argument("--library-size-key", default=None, help="obs column of library sizes")
    parser.add_argument("--combination-delimiter", default="+")
    add_output_args(parser)
    add_model_args(parser)
    checkpoints = parser.add_argument_group("checkpoints")
    checkpoints.add_argument(
        "--resume",
        action="store_true",
        help="continue from the checkpoint in OUT.checkpoints/ left by an interrupted run "
        "(same arguments; --lr may change)",
    )
    checkpoints.add_argument(
        "--checkpoint-every",
        type=int,
        default=500,
        help="optimizer steps between checkpoints in OUT.checkpoints/ (default 500)",
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel training; launch with torchrun --nproc_per_node=N "
        "(--batch-size is the global batch; rank 0 writes --out)",
    )
    parser.set_defaults(run=run)


def checkpoint_dir(out: Path) -> Path:
    """Where ``train`` keeps resumable checkpoints: beside ``--out``, which is written only
    once training has finished."""
    return out.with_name(out.name + ".checkpoints")


def build_model(adata, args: argparse.Namespace):
    from samsvae_plus.model.family import SAMSVAE

    return SAMSVAE(
        adata,
        latent_dim=args.latent_dim,
        guide=args.guide,
        mask_prior=args.mask_prior,
        basal_sees_shift=args.basal_sees_shift,
        basal_encoder=args.basal_encoder,
        gene_embedding=args.gene_embedding,
        n_tokens=args.n_tokens,
        encoder_weights=args.encoder_weights,
    )


def fit(model, args: argparse.Namespace, **checkpointing) -> None:
    model.train(
        max_epochs=args.max_epochs,
        dense_epochs=args.dense_epochs,
        batch_size=args.batch_size,
        n_particles=args.n_particles,
        lr=args.lr,
        lr_scaling=args.lr_scaling,
        compile_kernels=args.compile_kernels,
        device=args.device,
        seed=args.seed,
        progress=not args.no_progress,
        **checkpointing,
    )


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from samsvae_plus import plotting
    from samsvae_plus.data.registry import setup_anndata
    from samsvae_plus.inference.training_checkpoints import CHECKPOINT_FILE

    out = check_output_dir(args.out, args.overwrite)
    if args.distributed and args.resume:
        raise InputError("--resume is not supported with --distributed yet; drop one of them")
    # With --distributed every process trains the same model; only rank 0 writes.
    is_main = not args.distributed or int(os.environ.get("RANK", "0")) == 0
    checkpoints = checkpoint_dir(out)
    if (checkpoints / CHECKPOINT_FILE).exists() and not args.resume:
        raise InputError(
            f"{checkpoints} holds the checkpoint of an interrupted run; pass --resume to "
            "continue it, or delete it to start afresh"
        )
    adata = read_h5ad(args.data)
    setup_anndata(
        adata,
        args.perturbation_key,
        args.control_label,
        context_key=args.context_key,
        layer=args.layer,
        combination_delimiter=args.combination_delimiter,
        library_size_key=args.library_size_key,
    )
    model = build_model(adata, args)
    checkpointing = (
        {"distributed": True}
        if args.distributed
        else {
            "checkpoint_dir": checkpoints,
            "checkpoint_every": args.checkpoint_every,
            "resume": args.resume,
        }
    )
    try:
        fit(model, args, **checkpointing)
    except DivergenceError as err:
        # Nothing is lost: the parameters of the last completed epoch go to --out, marked,
        # and the checkpoints stay for --resume (with a lower --lr).
        if not is_main:
            raise
        with atomic_directory(out) as tmp:
            model.save_into(tmp)
            (tmp / "DIVERGED.txt").write_text(f"{err}\n")
        raise
    if not is_main:
        return 0  # every process holds the same model; rank 0 writes it
    history = model.history
    best = (
        history.validation_elbo[history.best_epoch]
        if history.validation_elbo
        else history.train_elbo[-1]
    )
    outputs = OptionalOutputs("train")
    with atomic_directory(out) as tmp:
        model.save_into(tmp)
        write_json(tmp / "history.json", history.to_dict())
        write_json(tmp / "split.json", model.split.to_dict())
        (tmp / "figures").mkdir()
        outputs.figure(
            tmp,
            "figures/training.png",
            partial(plotting.training_curves, history, return_fig=True),
        )
    # The finished model is in --out; the checkpoints only served to get there.
    shutil.rmtree(checkpoints, ignore_errors=True)
    return finish(
        "train",
        f"{adata.n_obs} cells, {len(history.train_elbo)} epochs, best validation ELBO "
        f"{best:.2f} nats/cell at epoch {history.best_epoch} -> {out}{outputs.summary()}",
    )
