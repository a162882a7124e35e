"""``samsvae-plus demo``: simulate, train SAMS-VAE and check it against the ground truth."""

from __future__ import annotations

import argparse
import time
from functools import partial

from samsvae_plus._atomic import atomic_directory, atomic_write_text
from samsvae_plus.cli.common import add_output_args, check_output_dir, finish, write_json
from samsvae_plus.cli.optional_outputs import OptionalOutputs
from samsvae_plus.cli.train import add_model_args, build_model, fit
from samsvae_plus.module.config import SAMSVAEConfig

# The demo trains with the package defaults (SAMSVAE(adata).train()): what it reports is what
# a user gets without passing an option.


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="simulate data, train SAMS-VAE and report recovery of the ground truth",
        description="Simulate Perturb-seq data, train SAMS-VAE, and write report.md (validation "
        "ELBO, mask-recovery F1, ATE Pearson against the truth), the model and figures/masks.png.",
    )
    add_output_args(parser, default="demo_out")
    parser.add_argument("--n-perturbations", type=int, default=50)
    parser.add_argument("--n-contexts", type=int, default=3)
    parser.add_argument("--sim-seed", type=int, default=0, help="seed of the simulation")
    add_model_args(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from samsvae_plus import plotting
    from samsvae_plus.data.registry import setup_anndata
    from samsvae_plus.data.simulate import simulate
    from samsvae_plus.evaluate.ate import ate_pearson
    from samsvae_plus.evaluate.masks import mask_recovery

    out = check_output_dir(args.out, args.overwrite)
    start = time.perf_counter()
    pairs = args.n_perturbations * (args.n_perturbations - 1) // 2
    adata = simulate(
        n_perturbations=args.n_perturbations,
        n_contexts=args.n_contexts,
        n_combinations=min(20, pairs),
        seed=args.sim_seed,
    )
    truth = adata.uns["simulation"]
    setup_anndata(adata, "condition", "control", context_key="cell_type")
    model = build_model(adata, args)
    fit(model, args)

    probabilities = model.mask_probabilities().loc[list(truth["perturbations"])]
    recovery = mask_recovery(truth["mask"], probabilities)
    ate = model.average_treatment_effect(seed=args.seed)
    history = model.history
    metrics = {
        "validation_elbo": history.validation_elbo[history.best_epoch],
        "best_epoch": history.best_epoch,
        "epochs": len(history.train_elbo),
        "mask_f1": recovery.f1,
        "mask_precision": recovery.precision,
        "mask_recall": recovery.recall,
        "ate_pearson": ate_pearson(ate, truth["true_ate"]),
        "ate_pearson_top20": ate_pearson(ate, truth["true_ate"], top_n=20),
        "n_cells": adata.n_obs,
        "n_genes": adata.n_vars,
        "wall_time_s": time.perf_counter() - start,
    }
    outputs = OptionalOutputs("demo")
    with atomic_directory(out) as tmp:
        model.save(tmp / "model")
        write_json(tmp / "split.json", model.split.to_dict())
        ate.to_csv(tmp / "ate.csv")
        (tmp / "figures").mkdir()
        outputs.figure(
            tmp, "figures/masks.png", partial(plotting.masks, probabilities, return_fig=True)
        )
        outputs.figure(
            tmp,
            "figures/training.png",
            partial(plotting.training_curves, history, return_fig=True),
        )
        outputs.attempt(
            "report.md",
            lambda: atomic_write_text(tmp / "report.md", _report(metrics, model.config)),
        )
        # Last, so that it records what could not be written.
        write_json(
            tmp / "metrics.json",
            {
                **metrics,
                **({"not_written": outputs.failed} if outputs.failed else {}),
                "config": model.config.to_dict(),
                "args": vars(args) | {"run": None},
            },
        )
    return finish(
        "demo",
        f"validation ELBO {metrics['validation_elbo']:.1f} nats/cell, mask F1 {recovery.f1:.3f}, "
        f"ATE Pearson {metrics['ate_pearson']:.3f} ({metrics['wall_time_s']:.0f} s) -> {out}"
        f"{outputs.summary()}",
    )


def _report(metrics: dict, config: SAMSVAEConfig) -> str:
    return f"""# samsvae-plus demo

Simulated data: {metrics["n_cells"]} cells x {metrics["n_genes"]} genes (`sp.datasets.simulate`).
Model: SAMS-VAE, {config.guide} guide, latent dimension {config.latent_dim}.

| metric | value |
|---|---|
| best validation ELBO (nats per cell) | {metrics["validation_elbo"]:.2f} (epoch {metrics["best_epoch"]} of {metrics["epochs"]}) |
| mask-recovery F1 (Hungarian-matched dimensions) | {metrics["mask_f1"]:.3f} |
| mask precision / recall | {metrics["mask_precision"]:.3f} / {metrics["mask_recall"]:.3f} |
| ATE Pearson vs truth, all genes | {metrics["ate_pearson"]:.3f} |
| ATE Pearson vs truth, top 20 genes per perturbation | {metrics["ate_pearson_top20"]:.3f} |
| wall time (s) | {metrics["wall_time_s"]:.0f} |

ATEs are on the log2(1e4 x / sum x + 1) scale, pooled over contexts with equal weights.
"""
