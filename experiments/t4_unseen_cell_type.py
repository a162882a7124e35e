"""T4, unseen cell type: predict a held-out context's perturbations from its control cells.

For each fold one context is held out (``splits.held_out_context``): models train on all
cells of the other contexts plus the *control* cells of the held-out one, then predict its
perturbations by encoding its real control cells (``model.predict``). Predictions are
scored against the context's real perturbed cells with the challenge scorer (DES, PDS,
MAE and their scores normalised against the cell-mean baseline built from the training
cells; ``avg_score``) and with ATE Pearson (all genes). Everything is compared in
``log1p(1e4 x / total)`` space (``evaluate.context_shift``).

Methods (``configs/t4_unseen_cell_type.yaml``): two baselines, the cell-mean baseline and
the context-mean shift (each perturbation's mean shift in the training contexts, added to
the held-out controls); and the config's model rows, SAMS-VAE with the transformer basal
encoder (the data set's gene embedding: GO on Norman, learned gene vectors on the
simulator, whose genes have no symbols), the same after masked-expression pretraining on
the fold's training cells, and the MLP encoder.

Data:

- ``norman``: ``norman_mcfaline_devel``, holding out A172, T98G and U87MG in turn, each
  for its 9 perturbations shared with the other lines;
- ``simulation``: the simulator with three contexts (``context_scale=1.5``), holding out
  each in turn; its true effects differ by context because the decoder is non-linear in
  the context's basal state. Here the ATE is also compared with the simulator's true ATE
  of the held-out context (``ate_pearson_truth``).

Each seed redraws the splits' validation cells, the simulated data and every model's
initialisation and training; the table gives the mean and sd over seeds of each method's
mean over folds, and ``runs.csv`` every fold's row; each fold's split is in
``splits.json``.

Each finished row (and each fold's pretrained weights) is kept in ``OUT/cache/DIGEST/``
and reused when the command is run again with the same settings and seed: with
``--rows-only`` a run fills that cache for its seeds and writes no table, so seeds can run
side by side and a last run with every seed gathers them.

Usage::

    python experiments/t4_unseen_cell_type.py [--out figures/t4_unseen_cell_type] [--seeds 0 1 2] [--smoke] [--rows-only]
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import (
    cache_folder,
    save_figure,
    seed_summary,
    split_record,
    table_args,
    write_outputs,
)
from _data import CONTEXT, CONTROL, KEY, load_dataset
from _models import fit
from _plots import bars

import samsvae_plus as sp
from samsvae_plus._atomic import atomic_write_text
from samsvae_plus.data.splits import held_out_context
from samsvae_plus.evaluate.ate import ate_pearson
from samsvae_plus.evaluate.context_shift import context_mean_shift, log_ate, log_normalised

NAME = "t4_unseen_cell_type"
BASELINES = ("cell-mean baseline", "context-mean shift")
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


def load(spec: dict, seed: int, max_folds: int | None):
    """The registered data set and its folds (held-out contexts): the spec's ``folds``, or
    every context of the simulator; the first ``max_folds`` of them."""
    adata, truth = load_dataset(spec, seed)
    folds = tuple(spec["folds"]) if "folds" in spec else tuple(truth["contexts"])
    return adata, folds[:max_folds]


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


def shift_prediction(train, controls, conditions: list[str]):
    """The context-mean shift's log-normalised prediction of ``conditions`` (and the
    control) for the cells ``controls``, from the training cells ``train``."""
    return context_mean_shift(
        train,
        controls,
        [CONTROL, *conditions],
        perturbation_key=KEY,
        context_key=CONTEXT,
        control_label=CONTROL,
    )


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
    name: str, spec: dict, adata, context: str, seed: int, config: dict, cache: Path, device: str
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
        elif method == "context-mean shift":
            pred = shift_prediction(train, controls, conditions)
        else:
            raise ValueError(f"unknown baseline {method!r}; choose from {list(BASELINES)}")
        return row(method, pred, log_ate(pred, KEY, CONTROL))

    transformer = config["transformer"]
    embedding = {"gene_embedding": spec["gene_embedding"]}

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
                device=device,
                **embedding,
                **config["pretraining"],
            )
            atomic_write_text(record, f"{time.perf_counter() - started}\n")
        return weights, float(record.read_text())

    def model_row(entry: dict) -> dict:
        options, extra_s = {}, 0.0
        if entry.get("encoder", "mlp") == "transformer":
            options = {"basal_encoder": "transformer", **transformer, **embedding}
            if entry.get("pretrained"):
                weights, extra_s = pretrained_weights()
                # the file's architecture wins: transformer= beside it would be an error
                options = {"basal_encoder": "transformer", "encoder_weights": weights, **embedding}
                options["n_tokens"] = transformer["n_tokens"]
        elif entry.get("pretrained"):
            raise ValueError(f"row {entry['label']!r}: only a transformer encoder is pretrained")
        model_entry = {**entry, "options": {**entry.get("options", {}), **options}}
        model, seconds = fit(
            adata,
            model_entry,
            latent_dim=config["latent_dim"],
            training=config["training"],
            split=split,
            seed=seed,
            device=device,
        )
        pred = model.predict(controls, [CONTROL, *conditions], seed=seed)
        ate = model.average_treatment_effect(
            conditions,
            context=context,
            basal="encoder",
            adata_controls=controls,
            n_draws=config["ate"]["n_draws"],
            n_cells=controls.n_obs,
            seed=seed,
        )
        return row(entry["label"], log_normalised(pred), ate, seconds + extra_s)

    methods = [(method, None) for method in config["baselines"]]
    methods += [(entry["label"], entry) for entry in config["rows"]]
    rows, cached = [], 0
    for method, entry in methods:
        done = stem.with_name(f"{stem.name}_{method.replace(', ', '_').replace(' ', '-')}.json")
        cached += done.exists()
        if not done.exists():
            result = baseline(method) if entry is None else model_row(entry)
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


def main() -> None:
    args, config = table_args(NAME, __doc__, rows_only=True)
    started = time.perf_counter()
    meta = {**config, "smoke": args.smoke, "seeds": args.seeds}
    rows, splits, cached = [], [], 0
    for seed in args.seeds:
        cache = cache_folder(args.out, meta, seed)
        for name in config["data"]:
            spec = config["datasets"][name]
            adata, folds = load(spec, seed, config["max_folds"])
            for context in folds:
                fold_rows, split, fold_cached = run_fold(
                    name, spec, adata, context, seed, config, cache, args.device
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
    for metric in ("avg_score", "ate_pearson"):
        save_figure(bars(fold_means(runs), metric, "method", "data"), written, metric)
    print(table.round(3).to_string())
    print(f"wrote {written}")


if __name__ == "__main__":
    main()
