"""Unseen cell type: predict a held-out context's perturbations from its control cells.

For each fold one context is held out (``splits.held_out_context``): models train on all
cells of the other contexts plus the *control* cells of the held-out one, then predict its
perturbations by encoding its real control cells (``model.predict``). Predictions are
scored against the context's real perturbed cells with the challenge scorer (DES, PDS,
MAE and their scores normalised against the cell-mean baseline built from the training
cells; ``avg_score``) and with ATE Pearson (all genes). Everything is compared in
``log1p(1e4 x / total)`` space (``evaluate.context_shift``).

Methods: SAMS-VAE (correlated_basal guide) with the transformer basal encoder (GO gene
embeddings on Norman; learned gene vectors on the simulator, whose genes have no
symbols), the same after masked-expression pretraining on the fold's training cells, the
MLP encoder; and two baselines: the cell-mean baseline and the context-mean shift (each
perturbation's mean shift in the training contexts, added to the held-out controls).

Data:

- ``norman``: ``norman_mcfaline_devel``, holding out A172, T98G and U87MG in turn, each
  for its 9 perturbations shared with the other lines;
- ``simulation``: the simulator with three contexts (``context_scale=1.5``), holding out
  each in turn; its true effects differ by context because the decoder is non-linear in
  the context's basal state. Here the ATE is also compared with the simulator's true ATE
  of the held-out context (``ate_pearson_truth``).

Each seed (``--seeds``) redraws the splits' validation cells, the simulated data and every
model's initialisation and training; the table gives the mean and sd over seeds of each
method's mean over folds.

The transformer runs with a CPU-sized architecture (``TRANSFORMER`` below). Each finished
row (and each fold's pretrained weights) is kept in ``OUT/cache/SETTINGS/`` and reused when
the command is run again with the same settings and seed.

Usage::

    python experiments/unseen_cell_type.py --out figures/unseen_cell_type [--data norman simulation] [--seeds 0 1 2] [--smoke] [--rows-only]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from _common import configure_torch, seed_summary, split_record, write_outputs

import samsvae_plus as sp
from samsvae_plus._atomic import atomic_write_text
from samsvae_plus.data.splits import held_out_context
from samsvae_plus.evaluate.ate import ate_pearson
from samsvae_plus.evaluate.context_shift import context_mean_shift, log_ate, log_normalised

KEY, CONTROL, CONTEXT = "condition", "control", "cell_type"
NORMAN_FOLDS = ("A172", "T98G", "U87MG")
SIMULATION = dict(
    n_perturbations=10,
    n_contexts=3,
    n_genes=200,
    latent_dim=8,
    n_combinations=0,
    cells_per_condition=120,
    n_control_cells=360,
    context_scale=1.5,
    ate_cells=200,
)
SMOKE_SIMULATION = dict(
    n_perturbations=4,
    n_contexts=3,
    n_genes=40,
    latent_dim=3,
    n_combinations=0,
    cells_per_condition=30,
    n_control_cells=60,
    context_scale=1.5,
    ate_cells=20,
)
MODEL = dict(latent_dim=10, guide="correlated_basal")
TRANSFORMER = dict(
    basal_encoder="transformer", n_tokens=64, transformer=dict(d_model=32, n_heads=4, n_layers=1)
)
SMOKE_TRANSFORMER = dict(
    basal_encoder="transformer", n_tokens=8, transformer=dict(d_model=8, n_heads=2, n_layers=1)
)
TRAINING = dict(
    # The transformer encoder is still improving at 60 epochs (validation ELBO -426 against
    # the MLP's -365 on the simulator's first fold); by 200 it has caught up (-362).
    max_epochs=200,
    dense_epochs=25,
    batch_size=512,
    n_particles=1,
    lr=2e-3,
    early_stopping_patience=10,
    progress=False,
)
SMOKE_TRAINING = dict(max_epochs=2, dense_epochs=1, batch_size=128, n_particles=1, progress=False)
PRETRAINING = dict(max_epochs=15, batch_size=256, lr=1e-3)
SMOKE_PRETRAINING = dict(max_epochs=1, batch_size=128)
METHODS = [
    "cell-mean baseline",
    "context-mean shift",
    "SAMS-VAE, transformer",
    "SAMS-VAE, transformer, pretrained",
    "SAMS-VAE, MLP",
]
METRICS = [
    "ate_pearson",
    "ate_pearson_truth",
    "overlap_at_N",
    "discrimination_score_l1",
    "mae",
    "norm_overlap_at_N",
    "norm_discrimination_score_l1",
    "norm_mae",
    "avg_score",
]


def load(name: str, smoke: bool, seed: int):
    """The registered data set and its folds (held-out contexts)."""
    if name == "norman":
        adata = sp.datasets.norman_mcfaline_devel()
        if smoke:
            keep = adata.obs.groupby([KEY, CONTEXT], observed=True).head(6).index
            adata = adata[keep].copy()
        folds = NORMAN_FOLDS[:1] if smoke else NORMAN_FOLDS
    else:
        adata = sp.datasets.simulate(**(SMOKE_SIMULATION if smoke else SIMULATION), seed=seed)
        folds = tuple(adata.uns["simulation"]["contexts"])[: 1 if smoke else None]
    sp.setup_anndata(adata, KEY, CONTROL, context_key=CONTEXT)
    return adata, folds


def scores(pred_log, real_log, reference_log) -> dict:
    """Challenge-score means and the scores normalised against the cell-mean baseline."""
    result = sp.metrics.challenge_score(
        pred_log, real_log, perturbation_key=KEY, control_label=CONTROL, reference=reference_log
    )
    row = {m: float(result.mean[m]) for m in ("overlap_at_N", "discrimination_score_l1", "mae")}
    for m in ("overlap_at_N", "discrimination_score_l1", "mae"):
        row[f"norm_{m}"] = float(result.score[m])
    row["avg_score"] = float(result.score["avg_score"])
    return row


def true_ate(adata, context: str, conditions: list[str]) -> pd.DataFrame | None:
    """The simulator's true ATE in ``context`` (None for real data)."""
    simulation = adata.uns.get("simulation")
    if simulation is None:
        return None
    by_context = simulation["true_ate_by_context"]
    index = list(simulation["contexts"]).index(context)
    table = pd.DataFrame(
        by_context[index], index=simulation["true_ate"].index, columns=adata.var_names
    )
    return table.loc[conditions]


def run_fold(
    name: str, adata, context: str, seed: int, smoke: bool, cache: Path
) -> tuple[list[dict], dict, int]:
    """Every method's row for one held-out context, the fold's split record, and how many
    rows came from ``cache``. Each row (and the pretrained weights) is kept there and
    reused by a rerun: a full run takes hours on 2 CPU cores, and a killed one should not
    start over."""
    stem = cache / f"{name}_{context}_seed{seed}"
    split = held_out_context(adata.obs[KEY], adata.obs[CONTEXT], context, seed=seed)
    held_controls = np.asarray((adata.obs[CONTEXT] == context) & (adata.obs[KEY] == CONTROL))
    controls = adata[held_controls].copy()
    real = adata[np.sort(np.concatenate([split.test, np.flatnonzero(held_controls)]))].copy()
    conditions = sorted(set(np.asarray(adata.obs[KEY])[split.test]))
    train = adata[split.train].copy()
    real_log, reference_log = log_normalised(real), log_normalised(train)
    real_ate = log_ate(real_log, KEY, CONTROL).loc[conditions]
    truth = true_ate(adata, context, conditions)
    base = {"data": name, "context": context, "seed": seed, "n_test_cells": int(split.test.size)}

    def row(method: str, pred_log, ate: pd.DataFrame, seconds: float = 0.0) -> dict:
        return {
            **base,
            "method": method,
            "ate_pearson": ate_pearson(ate, real_ate),
            "ate_pearson_truth": np.nan if truth is None else ate_pearson(ate, truth),
            **scores(pred_log, real_log, reference_log),
            "train_s": seconds,
        }

    def baseline(method: str) -> dict:
        if method == "cell-mean baseline":
            pred = sp.metrics.cell_mean_baseline(
                reference_log, real_log, perturbation_key=KEY, control_label=CONTROL
            )
        else:
            pred = context_mean_shift(
                train,
                controls,
                [CONTROL, *conditions],
                perturbation_key=KEY,
                context_key=CONTEXT,
                control_label=CONTROL,
            )
        return row(method, pred, log_ate(pred, KEY, CONTROL))

    transformer = SMOKE_TRANSFORMER if smoke else TRANSFORMER
    embedding = {"gene_embedding": "go" if name == "norman" else "learned"}

    def pretrained_weights() -> tuple[Path, float]:
        weights, record = stem.with_name(stem.name + "_encoder.pt"), stem.with_suffix(".pretrain")
        if not record.exists():
            started = time.perf_counter()
            sp.pretrain_encoder(
                train,
                weights,
                n_tokens=transformer["n_tokens"],
                transformer=transformer["transformer"],
                seed=seed,
                **embedding,
                **(SMOKE_PRETRAINING if smoke else PRETRAINING),
            )
            atomic_write_text(record, f"{time.perf_counter() - started}\n")
        return weights, float(record.read_text())

    def model_row(method: str) -> dict:
        options, extra_s = {}, 0.0
        if "transformer" in method:
            options = {**transformer, **embedding}
        if "pretrained" in method:
            weights, extra_s = pretrained_weights()
            options = {"basal_encoder": "transformer", "encoder_weights": weights, **embedding}
            options["n_tokens"] = transformer["n_tokens"]
        model = sp.SAMSVAE(adata, **MODEL, **options)
        started = time.perf_counter()
        model.train(**(SMOKE_TRAINING if smoke else TRAINING), split=split, seed=seed)
        seconds = time.perf_counter() - started + extra_s
        pred = model.predict(controls, [CONTROL, *conditions], seed=seed)
        ate = model.average_treatment_effect(
            conditions,
            context=context,
            basal="encoder",
            adata_controls=controls,
            n_draws=2 if smoke else 10,
            n_cells=controls.n_obs,
            seed=seed,
        )
        return row(method, log_normalised(pred), ate, seconds)

    rows, cached = [], 0
    for method in METHODS:
        done = stem.with_name(f"{stem.name}_{method.replace(', ', '_').replace(' ', '-')}.json")
        cached += done.exists()
        if not done.exists():
            result = baseline(method) if "baseline" in method or "shift" in method else None
            result = result or model_row(method)
            atomic_write_text(done, json.dumps(result, default=float))
            print(f"{name} {context} {method}: {result['avg_score']:.3f} avg_score", flush=True)
        rows.append(json.loads(done.read_text()))
    return rows, split_record(split, data=name, held_out_context=context), cached


def fold_means(runs: pd.DataFrame) -> pd.DataFrame:
    """Each seed's mean over the held-out folds of every metric, one row per (data,
    method, seed): the values whose mean and sd over seeds the table gives."""
    return runs.groupby(["data", "method", "seed"], sort=False)[METRICS].mean().reset_index()


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over seeds of every metric, one row per (data, method) (``runs.csv``
    keeps every fold)."""
    return seed_summary(fold_means(runs), ["data", "method"], METRICS)


def cache_folder(out: str, meta: dict, seed: int) -> Path:
    """``OUT/cache/DIGEST``: rows are only reused under the same settings and seed, so the
    folder is named by them (not by the data sets, whose rows are files of their own)."""
    settings = {k: v for k, v in meta.items() if k not in ("data", "seeds")} | {"seed": seed}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    folder = Path(out) / "cache" / digest
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="figures/unseen_cell_type")
    parser.add_argument("--data", nargs="+", default=["norman", "simulation"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--smoke", action="store_true", help="tiny data and budget, for tests")
    parser.add_argument(
        "--rows-only",
        action="store_true",
        help="compute and cache the rows of --seeds, write no table (seeds run side by "
        "side; a later run with every seed gathers them from the cache)",
    )
    args = parser.parse_args()
    configure_torch()
    warnings.filterwarnings("ignore", message=".*have no embedding.*")
    started = time.perf_counter()
    meta = {
        "smoke": args.smoke,
        "seeds": args.seeds,
        "data": args.data,
        "model": MODEL,
        "transformer": SMOKE_TRANSFORMER if args.smoke else TRANSFORMER,
        "training": SMOKE_TRAINING if args.smoke else TRAINING,
        "pretraining": SMOKE_PRETRAINING if args.smoke else PRETRAINING,
        "simulation": SMOKE_SIMULATION if args.smoke else SIMULATION,
    }
    rows, splits, cached = [], [], 0
    for seed in args.seeds:
        cache = cache_folder(args.out, meta, seed)
        for name in args.data:
            adata, folds = load(name, args.smoke, seed)
            for context in folds:
                fold_rows, split, fold_cached = run_fold(
                    name, adata, context, seed, args.smoke, cache
                )
                rows += fold_rows
                splits.append(split)
                cached += fold_cached
    if args.rows_only:
        print(f"{len(rows) - cached} rows computed, {cached} found in {Path(args.out) / 'cache'}")
        return
    # with rows from the cache the wall time is not that of computing them (train_s is)
    meta |= {"splits": splits, "rows_from_cache": cached}
    runs = pd.DataFrame(rows)
    table = summary(runs)
    written = write_outputs(args.out, table, runs, meta, started)
    print(table.round(3).to_string())
    print(f"wrote {written}")


if __name__ == "__main__":
    main()
