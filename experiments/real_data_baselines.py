"""Real data against the no-model baselines, with the package defaults.

The acceptance experiment of the real-data accuracy work: ``SAMSVAE(adata)`` and
``train()`` exactly as a user runs them (the config's ``model`` and ``training`` add
nothing but the seed and the split), scored in ``log1p(1e4 x / total)`` at the cells' real
library sizes, beside the baseline that needs no model. Three designs (``parts``):

- ``combinations``: Norman's K562 cells; every combination whose two genes were also
  perturbed alone is held out with all its cells. The model's ATE
  (``average_treatment_effect(space="data")``, from the training controls) against the
  held-out cells' data ATE, over all genes and over each combination's top genes by
  |real ATE|; the additive baseline sums the training cells' single-gene data ATEs.
- ``unseen_genes`` (T5's design): a fraction of the genes with a GO embedding is held out
  with every cell carrying one; SAMS-VAE with the gene-embedding prior against the mean
  of the training perturbations' data ATEs, per cell type.
- ``unseen_cell_type`` (T4's design): each fold holds out one context's perturbed cells;
  the model predicts them from the context's control cells, and the prediction file
  holds those control cells as observed (the factual outcome). Challenge ``avg_score``
  against the context-mean shift.

Each model row comes twice: the model's ATE proper (its perturbed draws minus its own
control draws), and, named ``..., observed controls``, its predicted cells (``predict``
from the training controls) minus the training controls as observed, the control arm
every baseline subtracts and the way a prediction file is scored (the cell-type design
scores that way only).

Every comparison is made twice. With **shared** controls, the target ATE subtracts the
same control cells that the baselines subtract (and that the model saw), as in the
designs above. With **independent** controls, a random ``target_control_fraction`` of
each context's controls is kept out of training and of the baselines and serves only
the target: a baseline built as ``P - C`` shares the sampling noise of ``C`` with a
target ``P' - C``, which rewards it for reproducing noise that no model can predict
(docs/results.md).

Each (part, data set, seed) set of rows is kept in ``OUT/cache/DIGEST/`` (named by the
settings and the seed) and reused by a rerun with the same settings: seeds can run side by
side with ``--rows-only`` (``--seeds 0 --rows-only``, ...) and a last run with every seed
writes the table; the splits are saved beside it.

Usage::

    python experiments/real_data_baselines.py [--out figures/real_data_baselines] [--seeds 0 1 2] [--parts combinations] [--rows-only] [--smoke]
"""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from _common import cache_folder, seed_summary, split_record, table_args, write_outputs
from _data import CONTEXT, CONTROL, KEY, load_dataset
from _scores import data_space_ate, observed_arm_ate
from t2_heldout_combinations import predictable
from t4_unseen_cell_type import scores as challenge_scores
from t4_unseen_cell_type import shift_prediction
from t5_unseen_perturbations import mean_effect

import samsvae_plus as sp
from samsvae_plus._atomic import atomic_write_text
from samsvae_plus.data.splits import (
    Split,
    held_out_context,
    held_out_perturbations,
    random_split,
)
from samsvae_plus.evaluate.ate import ate_pearson, data_ate
from samsvae_plus.evaluate.context_shift import log_normalised

NAME = "real_data_baselines"
PARTS = ("combinations", "unseen_genes", "unseen_cell_type")
CONTROLS = ("shared", "independent")
# A model row named with this subtracts the training controls as observed, as the baselines
# do (and as a prediction file is scored); the plain row subtracts the model's own control
# draws, so that it carries none of the control cells' sampling noise.
OBSERVED = "observed controls"


def part_options(parser) -> None:
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=None)


def target_controls(adata: ad.AnnData, fraction: float, seed: int) -> np.ndarray:
    """Indices of ``fraction`` of each context's control cells, drawn by ``seed``: the
    independent targets' controls, which neither training nor a baseline sees."""
    rng = np.random.default_rng(seed)
    labels = adata.obs[KEY].to_numpy(dtype=str)
    contexts = adata.obs[CONTEXT].to_numpy(dtype=str)
    picked = []
    for context in np.unique(contexts):
        cells = rng.permutation(np.flatnonzero((labels == CONTROL) & (contexts == context)))
        picked.append(cells[: int(len(cells) * fraction)])
    return np.sort(np.concatenate(picked))


def without(split: Split, cells: np.ndarray) -> Split:
    """``split`` with ``cells`` removed from its training and validation cells."""
    return Split(
        split.name,
        split.seed,
        np.setdiff1d(split.train, cells),
        np.setdiff1d(split.validation, cells),
        split.test,
    )


def fit_defaults(adata: ad.AnnData, config: dict, split: Split, seed: int, device: str, **model):
    """``SAMSVAE(adata)`` and ``train()`` at the package defaults (plus ``model``'s
    design-given options and the config's, which are empty unless a study sets them)."""
    fitted = sp.SAMSVAE(adata, **model, **config["model"])
    started = time.perf_counter()
    fitted.train(**config["training"], split=split, seed=seed, device=device, progress=False)
    return fitted, time.perf_counter() - started


def target_ates(
    adata, test: np.ndarray, train: np.ndarray, held_controls: np.ndarray, by_context: bool
) -> dict:
    """Data ATEs of the ``test`` cells against the training controls (``shared``: the
    controls the model and the baselines use) and against the held-out controls only
    (``independent``)."""
    controls = np.flatnonzero(adata.obs[KEY].to_numpy(dtype=str) == CONTROL)
    shared = np.intersect1d(controls, train)
    return {
        name: data_ate(
            adata[np.sort(np.concatenate([test, cells]))],
            KEY,
            CONTROL,
            context_key=CONTEXT,
            by_context=by_context,
        )
        for name, cells in (("shared", shared), ("independent", held_controls))
    }


def correlation_rows(base: dict, methods: dict, targets: dict, top_n: int | None) -> list[dict]:
    rows = []
    for controls, target in targets.items():
        for method, predicted in methods.items():
            row = {**base, "method": method, "controls": controls}
            row["ate_pearson"] = ate_pearson(predicted, target)
            if top_n is not None:
                row[f"ate_pearson_top{top_n}"] = ate_pearson(predicted, target, top_n=top_n)
            rows.append(row)
    return rows


def combinations(spec: dict, config: dict, seed: int, device: str):
    adata, _ = load_dataset(spec, seed)
    adata = adata[adata.obs[CONTEXT] == spec["context"]].copy()
    sp.setup_anndata(adata, KEY, CONTROL, context_key=CONTEXT)
    labels = adata.obs[KEY].to_numpy(dtype=str)
    held = predictable(labels)
    test = np.flatnonzero(np.isin(labels, held))
    held_controls = target_controls(adata, config["target_control_fraction"], seed)
    # every other cell trains or validates: the test set is the held-out combinations
    split = random_split(adata.n_obs, (0.9, 0.1, 0.0), seed=seed)
    split = without(
        Split("held_out_combinations", seed, *_move_to_test(split, test)), held_controls
    )
    model, seconds = fit_defaults(adata, config, split, seed, device)
    train = adata[split.train]
    draws = {"n_draws": config["n_draws"], "seed": seed}
    predicted = data_space_ate(model, train, held, **draws)
    observed_arm = observed_arm_ate(
        model, train, held, n_cells=config["observed_arm_cells"], **draws
    )
    seen = data_ate(train, KEY, CONTROL)
    additive = pd.DataFrame(
        [seen.loc[c.split("+")].sum(axis=0).to_numpy() for c in held],
        index=held,
        columns=adata.var_names,
    )
    targets = target_ates(adata, test, split.train, held_controls, False)
    targets = {k: v.loc[held] for k, v in targets.items()}
    base = {"part": "combinations", "data": "norman_k562", "seed": seed, "train_s": seconds}
    methods = {"SAMS-VAE": predicted, f"SAMS-VAE, {OBSERVED}": observed_arm}
    methods["additive"] = additive
    rows = correlation_rows(base, methods, targets, config["top_n"])
    return rows, [split_record(split, held_out_conditions=held, target_controls=held_controls)]


def _move_to_test(split: Split, test: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random split's training and validation cells without ``test``, which becomes the
    test set (every cell of the held-out conditions)."""
    return np.setdiff1d(split.train, test), np.setdiff1d(split.validation, test), test


def unseen_genes(data: str, spec: dict, config: dict, seed: int, device: str):
    adata, _ = load_dataset(spec, seed)
    labels = adata.obs[KEY].to_numpy(dtype=str)
    split = held_out_perturbations(
        labels,
        fraction=config["held_out_fraction"],
        candidates=set(sp.datasets.go_gene_embedding().index),
        seed=seed,
    )
    held_controls = target_controls(adata, config["target_control_fraction"], seed)
    split = without(split, held_controls)
    held = sorted(set(labels[split.test]))
    model, seconds = fit_defaults(
        adata, config, split, seed, device, perturbation_prior="gene_embedding", gene_embedding="go"
    )
    train = adata[split.train]
    draws = {"n_draws": config["n_draws"], "seed": seed, "by_context": True}
    predicted = data_space_ate(model, train, held, **draws)
    observed_arm = observed_arm_ate(
        model, train, held, n_cells=config["observed_arm_cells"], **draws
    )
    targets = target_ates(adata, split.test, split.train, held_controls, True)
    rows_index = predicted.index.intersection(targets["shared"].index)
    seen = data_ate(train, KEY, CONTROL, context_key=CONTEXT, by_context=True)
    name = "SAMS-VAE, gene-embedding prior"
    methods = {name: predicted.loc[rows_index]}
    methods[f"{name}, {OBSERVED}"] = observed_arm.loc[rows_index]
    methods["mean of perturbations"] = mean_effect(seen, rows_index)
    base = {"part": "unseen_genes", "data": data, "seed": seed, "train_s": seconds}
    rows = correlation_rows(base, methods, targets, None)
    return rows, [
        split_record(split, data=data, held_out_conditions=held, target_controls=held_controls)
    ]


def unseen_cell_type(data: str, spec: dict, config: dict, seed: int, device: str):
    adata, truth = load_dataset(spec, seed)
    folds = spec.get("folds") or list(truth["contexts"])
    rows, splits = [], []
    for context in folds[: config.get("max_folds")]:
        rows_, split = _cell_type_fold(adata, data, context, config, seed, device)
        rows += rows_
        splits.append(split)
    return rows, splits


def _cell_type_fold(adata, data: str, context: str, config: dict, seed: int, device: str):
    labels = adata.obs[KEY].to_numpy(dtype=str)
    split = held_out_context(adata.obs[KEY], adata.obs[CONTEXT], context, seed=seed)
    in_context = adata.obs[CONTEXT].to_numpy(dtype=str) == context
    context_controls = np.flatnonzero(in_context & (labels == CONTROL))
    # Half of the context's controls serve only the independent target; the model still
    # trains on the other half, as T4's model trains on the context's controls.
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(context_controls)
    n_target = int(len(shuffled) * config["target_control_fraction"])
    target_only, given = np.sort(shuffled[:n_target]), np.sort(shuffled[n_target:])
    split = without(split, target_only)
    model, seconds = fit_defaults(adata, config, split, seed, device)
    conditions = sorted(set(labels[split.test]))
    train = adata[split.train].copy()
    reference_log = log_normalised(train)
    rows = []
    for controls_name, source, target_ctrl in (
        ("shared", context_controls, context_controls),
        ("independent", given, target_only),
    ):
        controls = adata[source].copy()
        real = log_normalised(adata[np.sort(np.concatenate([split.test, target_ctrl]))])
        # predict adds the control rows as observed (its factual outcome); n_draws copies of
        # each cell, as one copy leaves Monte Carlo noise in the pseudobulks that the
        # context-mean shift, a deterministic shift of real cells, does not have
        model_file = model.predict(controls, conditions, n_draws=config["n_draws"], seed=seed)
        shift = shift_prediction(train, controls, conditions)
        for method, pred_log in (
            ("SAMS-VAE", log_normalised(model_file)),
            ("context-mean shift", shift),
        ):
            rows.append(
                {
                    "part": "unseen_cell_type",
                    "data": data,
                    "context": context,
                    "seed": seed,
                    "method": method,
                    "controls": controls_name,
                    "train_s": seconds,
                    **challenge_scores(pred_log, real, reference_log),
                }
            )
    return rows, split_record(
        split, data=data, held_out_context=context, target_controls=target_only
    )


def run(part: str, data: str, spec: dict, config: dict, seed: int, device: str):
    if part == "combinations":
        return combinations(spec, config, seed, device)
    if part == "unseen_genes":
        return unseen_genes(data, spec, config, seed, device)
    return unseen_cell_type(data, spec, config, seed, device)


def cached_rows(cache: Path, part: str, data: str, seed: int, compute) -> tuple[list, list, bool]:
    """The (part, data set, seed) rows from ``cache`` (a folder named by the settings and
    the seed, :func:`_common.cache_folder`), computed and kept there first when missing:
    a full run takes an hour on two cores, and a killed one should not start over. The
    third value says whether they came from the cache."""
    path = cache / f"{part}_{data}.json"
    if path.is_file():
        kept = json.loads(path.read_text())
        return kept["rows"], kept["splits"], True
    rows, splits = compute()
    atomic_write_text(path, json.dumps({"rows": rows, "splits": splits}, default=_plain))
    return rows, splits, False


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__}")


def main() -> None:
    args, config = table_args(NAME, __doc__, rows_only=True, options=part_options)
    started = time.perf_counter()
    rows, splits, cached = [], [], 0
    for seed in args.seeds:
        cache = cache_folder(args.out, {**config, "smoke": args.smoke}, seed)
        for part in args.parts or config["parts"]:
            part_config = {**config, **config[part]}
            for data, spec in config[part]["datasets"].items():
                print(f"{part} / {data} / seed {seed}", flush=True)
                compute = partial(run, part, data, spec, part_config, seed, args.device)
                part_rows, part_splits, from_cache = cached_rows(cache, part, data, seed, compute)
                rows += part_rows
                splits += part_splits
                cached += from_cache
    if args.rows_only:
        print(f"rows of seeds {args.seeds} kept in {Path(args.out) / 'cache'}")
        return
    runs = pd.DataFrame(rows)
    metrics = [c for c in runs.columns if c.startswith(("ate_pearson", "avg_score"))]
    by = ["part", "data", "controls", "method"]
    # a seed's value of the cell-type design is its mean over the folds, as in T4
    per_seed = runs.groupby([*by, "seed"], sort=False)[metrics].mean().reset_index()
    table = seed_summary(per_seed, by, metrics)
    # with rows from the cache, the wall time is not that of computing them (train_s is)
    meta = {**config, "smoke": args.smoke, "seeds": args.seeds, "splits": splits}
    meta["row_sets_from_cache"] = cached
    write_outputs(args.out, table, runs, meta, started)
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
