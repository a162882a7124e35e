"""The fraction sweeps of T2 (combinations seen) and T3 (combination cells kept).

Both train every model row at every fraction on one data set and seed, and score the
same things on combination cells only: test IWELBO (also relative to one reference row
and fraction, so that data sets of different size read alike), and ATE Pearson of the
evaluated combinations beside the additive baseline (the training data's ATE of A plus
that of B). T2 adds the model's non-additive residual against published interaction
scores.

Two config keys widen what is scored; without them a sweep scores as above.
``also_score`` lists ``test_cells`` (every row also against the data ATE of the held-out
cells, beside the simulator's truth) and ``seen_combinations`` (the models' ATE of the
combinations they trained on). ``data_ate_contexts`` says how a data ATE (the additive
baseline's, the test cells') treats contexts where the reference pools them:
``averaged`` (the default: each context against its own controls, then averaged, as the
simulator's truth is) or ``pooled`` (every cell pooled).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pandas as pd
from _common import save_figure, seed_summary, split_record, training_for, write_outputs
from _data import CONTEXT, CONTROL, KEY, load_dataset
from _models import fit, row_name
from _plots import trends
from _scores import ate_scores, model_ate, reference_ate, test_iwelbo
from scipy.stats import spearmanr

from samsvae_plus.data.splits import Split
from samsvae_plus.evaluate.ate import data_ate
from samsvae_plus.evaluate.combinations import additive_effects, nonadditive_residual

ADDITIVE = "additive baseline"
METRICS = [
    "test_iwelbo",
    "relative_iwelbo",
    "ate_pearson",
    "ate_pearson_top20",
    "residual_vs_interactions_spearman",
]

EXTRA_METRICS = {
    "test_cells": ["ate_test_cells_pearson", "ate_test_cells_pearson_top20"],
    "seen_combinations": ["ate_seen_pearson", "ate_seen_pearson_top20"],
}

# A split maker: (registered AnnData, fraction, seed) -> (split, test cells, combinations scored)
SplitMaker = Callable[..., tuple[Split, np.ndarray, list[str]]]


def _condition(label) -> str:
    return label[1] if isinstance(label, tuple) else label


def _cell_ate(adata, cells: np.ndarray, config: dict, by_context: bool) -> pd.DataFrame:
    """The data ATE of ``cells`` (in their given order), per (context, condition) with
    ``by_context``, else as ``config["data_ate_contexts"]`` says (see the module)."""
    contexts = config.get("data_ate_contexts", "averaged")
    if contexts not in ("averaged", "pooled"):
        raise ValueError(f"data_ate_contexts must be 'averaged' or 'pooled', got {contexts!r}")
    part = adata[cells]
    if by_context or contexts == "averaged":
        return data_ate(part, KEY, CONTROL, context_key=CONTEXT, by_context=by_context)
    return data_ate(part, KEY, CONTROL)


def _additive_prediction(
    adata, split: Split, combinations: list[str], reference: pd.DataFrame, config: dict
) -> pd.DataFrame:
    """The additive baseline's prediction of ``combinations``: the training cells' ATE of
    A plus that of B, labelled like ``reference``."""
    by_context = isinstance(reference.index, pd.MultiIndex)
    singles = _cell_ate(adata, split.train, config, by_context)
    labels = [label for label in reference.index if _condition(label) in combinations]
    return additive_effects(singles, labels)


def _ate_scores(
    predicted: pd.DataFrame, reference: pd.DataFrame, test_reference: pd.DataFrame | None
) -> dict:
    """ATE Pearson against the reference, and against the held-out cells' data ATE when
    ``test_reference`` is given (``also_score: [test_cells]``)."""
    scores = ate_scores(predicted, reference)
    if test_reference is not None:
        scores |= ate_scores(predicted, test_reference, prefix="ate_test_cells")
    return scores


def _residual_score(model, truth, combinations, scores: pd.Series | None, config, seed) -> float:
    """Spearman correlation over combinations of the size of the model's non-additive
    residual (norm over genes) with a published interaction score; NaN with fewer than
    three combinations whose parts the model can predict alone."""
    if scores is None:
        return np.nan
    singles = set(model.registry.conditions)
    usable = [c for c in combinations if c in scores.index and set(c.split("+")) <= singles]
    if len(usable) < 3:
        return np.nan
    parts = sorted({g for c in usable for g in c.split("+")})
    ate = model_ate(
        model, usable + parts, truth, **config["ate"], seed=seed, context=config.get("context")
    )
    if isinstance(ate.index, pd.MultiIndex):
        ate = ate.droplevel(0)
    residual = np.linalg.norm(nonadditive_residual(ate, usable).to_numpy(), axis=1)
    return float(spearmanr(residual, scores.loc[usable].to_numpy()).statistic)


def sweep(
    data: str,
    spec: dict,
    seed: int,
    config: dict,
    make_split: SplitMaker,
    fraction_name: str,
    device: str,
    interaction_scores: pd.Series | None = None,
) -> tuple[list[dict], list[dict]]:
    """Rows (one per model row and fraction, plus the additive baseline) and the splits."""
    adata, truth = load_dataset(spec, seed)
    options = {"context": spec.get("ate_context")}
    extra_metrics(config)  # an unknown name fails before any training
    also = set(config.get("also_score", []))
    rows, splits = [], []
    for fraction in config["fractions"]:
        split, test_cells, combinations = make_split(adata, fraction, seed)
        record = {"data": data, fraction_name: fraction, "scored_combinations": combinations}
        splits.append(split_record(split, **record))
        cells = np.concatenate([test_cells, split.train])
        reference = reference_ate(adata, cells, truth)
        by_context = isinstance(reference.index, pd.MultiIndex)
        test_reference = (
            _cell_ate(adata, cells, config, by_context) if "test_cells" in also else None
        )
        conditions = adata.obs[KEY].to_numpy(dtype=str)
        seen = sorted(c for c in set(conditions[split.train]) if "+" in c)
        base = {"data": data, fraction_name: fraction, "seed": seed}
        base["n_scored_combinations"] = len(combinations)
        additive = _additive_prediction(adata, split, combinations, reference, config)
        rows.append({**base, "model": ADDITIVE, **_ate_scores(additive, reference, test_reference)})
        test = adata[np.sort(test_cells)].copy()
        for entry in config["rows"]:
            model, seconds = fit(
                adata,
                entry,
                latent_dim=spec.get("latent_dim", config["latent_dim"]),
                training=training_for(config, spec),
                split=split,
                seed=seed,
                device=device,
            )
            predicted = model_ate(model, combinations, truth, **config["ate"], seed=seed, **options)
            seen_scores = {}  # the additive baseline has no such row: NaN there
            if "seen_combinations" in also:
                seen_ate = model_ate(model, seen, truth, **config["ate"], seed=seed, **options)
                seen_scores = ate_scores(seen_ate, reference, prefix="ate_seen")
            row = {
                **base,
                "model": row_name(entry),
                "test_iwelbo": test_iwelbo(model, test, config["iwelbo_samples"], seed),
                **_ate_scores(predicted, reference, test_reference),
                **seen_scores,
                "residual_vs_interactions_spearman": _residual_score(
                    model, truth, combinations, interaction_scores, {**config, **options}, seed
                ),
                "train_s": seconds,
            }
            rows.append(row)
            print(json.dumps(row, default=float), flush=True)
    return rows, splits


def extra_metrics(config: dict) -> list[str]:
    """The columns the config's ``also_score`` adds to a sweep's table."""
    names = config.get("also_score", [])
    unknown = sorted(set(names) - set(EXTRA_METRICS))
    if unknown:
        raise ValueError(f"also_score: unknown {unknown}; choose from {list(EXTRA_METRICS)}")
    return [m for name in names for m in EXTRA_METRICS[name]]


def relative_iwelbo(
    runs: pd.DataFrame, reference_row: str, fraction_name: str, fraction
) -> pd.Series:
    """Test IWELBO minus that of ``reference_row`` at ``fraction``, same data set and seed
    (nats per cell; positive is better than the reference)."""
    at = runs[(runs["model"] == reference_row) & (runs[fraction_name] == fraction)]
    base = at.set_index(["data", "seed"])["test_iwelbo"]
    keys = pd.MultiIndex.from_frame(runs[["data", "seed"]])
    return runs["test_iwelbo"] - base.reindex(keys).to_numpy()


def write_sweep(
    args,
    config: dict,
    rows: list[dict],
    splits: list[dict],
    fraction: str,
    reference_fraction: float,
    metrics: list[str],
    started: float,
) -> None:
    """A sweep's table (mean ± sd over seeds per data set, model and fraction), run record
    and trend figures; IWELBO is made relative to ``config["relative_to"]`` at
    ``reference_fraction`` (NaN without that row and fraction, and not drawn without a
    ``relative_to``). The config's ``also_score`` metrics follow ``metrics``."""
    runs = pd.DataFrame(rows)
    runs["relative_iwelbo"] = relative_iwelbo(
        runs, config.get("relative_to"), fraction, reference_fraction
    )
    metrics = [*metrics, *extra_metrics(config)]
    columns = ["data", "model", fraction, "seed", *metrics, "n_scored_combinations", "train_s"]
    runs = runs.reindex(columns=columns)
    table = seed_summary(runs, ["data", "model", fraction], metrics)
    meta = {**config, "smoke": args.smoke, "seeds": args.seeds, "splits": splits}
    write_outputs(args.out, table, runs, meta, started)
    drawn = ["relative_iwelbo"] if config.get("relative_to") else []  # else all NaN
    for metric in [*drawn, "ate_pearson"]:
        save_figure(trends(runs, metric, fraction, "model", "data"), args.out, metric)
    print(table.round(3).to_string())
