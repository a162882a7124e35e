"""``samsvae-plus train``: register an h5ad, fit SAMS-VAE and save it with its history."""

from __future__ import annotations

import argparse
import os
import shutil
from dataclasses import fields
from functools import partial
from pathlib import Path

from samsvae_plus._atomic import atomic_directory
from samsvae_plus.cli.common import add_output_args, check_output_dir, finish, read_h5ad, write_json
from samsvae_plus.cli.optional_outputs import OptionalOutputs
from samsvae_plus.cli.options import add_options, option_values
from samsvae_plus.errors import DivergenceError, InputError
from samsvae_plus.inference.training_options import TrainingOptions
from samsvae_plus.module.config import SAMSVAEConfig

# Modelling code (torch, pyro, matplotlib) is imported inside the functions that use it,
# so that building the parser for another subcommand stays light; the option records above
# import none of it.

# The options `train` and `demo` expose, in the order --help lists them; flags, defaults,
# help and choices come from the records.
MODEL_OPTIONS = (
    "latent_dim",
    "guide",
    "basal_sees_shift",
    "mask_prior",
    "basal_encoder",
    "gene_embedding",
    "n_tokens",
    "encoder_weights",
)
TRAINING_OPTIONS = (
    "max_epochs",
    "dense_epochs",
    "batch_size",
    "n_particles",
    "lr",
    "lr_scaling",
    "compile_kernels",
    "seed",
    "device",
    "progress",
)
# A command-line run is reproducible as it stands: seed 0, not sp.settings.seed.
COMMAND_LINE_DEFAULTS = {"seed": 0}


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """Model and training options shared by ``train`` and ``demo``."""
    # SAMS-VAE refuses a bad model option itself, with the messages the Python API gives;
    # argparse checks the training options' choices before any data is read.
    add_options(
        parser.add_argument_group("model"),
        SAMSVAEConfig.argument_fields(),
        MODEL_OPTIONS,
        check_choices=False,
    )
    add_options(
        parser.add_argument_group("training"),
        fields(TrainingOptions),
        TRAINING_OPTIONS,
        check_choices=True,
        defaults=COMMAND_LINE_DEFAULTS,
    )


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
    add_options(checkpoints, fields(TrainingOptions), ("checkpoint_every",), check_choices=True)
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

    return SAMSVAE(adata, **option_values(args, SAMSVAEConfig.argument_fields(), MODEL_OPTIONS))


def fit(model, args: argparse.Namespace, **checkpointing) -> None:
    model.train(
        **option_values(args, fields(TrainingOptions), TRAINING_OPTIONS),
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
