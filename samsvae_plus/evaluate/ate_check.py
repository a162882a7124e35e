"""Posterior-predictive checks of treatment effects: agreement and calibration tables.

Everything here works on arrays: a reference ATE table (the data's, or a simulator's
truth), posterior draws of the model's ATE for the same rows, and optionally draws of a
replicated statistic whose intervals the reference is checked against. The model side
(drawing them) is :mod:`samsvae_plus.inference.predictive_ate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtr

from samsvae_plus.data.splits import Split
from samsvae_plus.evaluate.ate import CONDITION_LEVEL, ate_pearson, ate_r2

# Nominal central-interval levels of the calibration curve.
CALIBRATION_LEVELS = tuple(np.round(np.arange(0.1, 1.0, 0.1), 2).tolist()) + (0.95,)
ALL = "all"


@dataclass(frozen=True)
class ATECheck:
    """Result of an ATE posterior-predictive check.

    Attributes
    ----------
    table
        One row per (condition or (context, condition)) x gene: ``reference``, ``model``
        (posterior mean of the population ATE), ``lower``/``upper`` (the checked interval
        at ``level``), and ``split``.
    metrics
        One row per group of perturbations (``"all"`` and each split label):
        ``n_perturbations``, ``pearson``, ``r2``, ``pearson_top20``, ``r2_top20``,
        ``coverage`` (fraction of reference entries inside the interval), ``nominal``,
        and ``coverage_credible`` when the checked interval is predictive.
    per_perturbation
        ``pearson``, ``r2``, ``coverage`` and ``split`` per row of the reference.
    calibration
        ``nominal`` level and empirical ``coverage`` of central intervals at several levels.
    reference, prediction
        The reference ATE and the model's posterior mean ATE, rows x genes.
    interval
        ``"predictive"`` (intervals of the replicated statistic), ``"credible"``
        (intervals of the population ATE) or ``"credible+reference_se"`` (those widened by
        the reference's own standard error).
    level
        The nominal level of ``lower``/``upper`` and ``coverage``.
    """

    table: pd.DataFrame
    metrics: pd.DataFrame
    per_perturbation: pd.DataFrame
    calibration: pd.DataFrame
    reference: pd.DataFrame
    prediction: pd.DataFrame
    interval: str
    level: float

    def to_dict(self) -> dict:
        """Metrics and calibration as JSON-ready dicts."""
        metrics = {
            str(group): {k: (None if pd.isna(v) else float(v)) for k, v in row.items()}
            for group, row in self.metrics.iterrows()
        }
        return {
            "interval": self.interval,
            "level": self.level,
            "metrics": metrics,
            "calibration": self.calibration.to_dict(orient="list"),
        }


@dataclass(frozen=True)
class ATEDraws:
    """What an ATE check compares, before it is summarised: a reference table and the
    model's draws for its rows (see :func:`summarise_ate` for the arguments' meaning).

    Draws of several posteriors of the same reference (the members of a bootstrap
    ensemble) are pooled with :func:`pool_ate_draws`.
    """

    reference: pd.DataFrame
    model_draws: np.ndarray
    interval_draws: np.ndarray | None = None
    reference_se: pd.DataFrame | None = None

    def summarise(self, **options) -> ATECheck:
        """:func:`summarise_ate` of these draws; ``options`` are its keyword arguments."""
        return summarise_ate(
            self.reference,
            self.model_draws,
            interval_draws=self.interval_draws,
            reference_se=self.reference_se,
            **options,
        )


def pool_ate_draws(parts: list[ATEDraws]) -> ATEDraws:
    """One :class:`ATEDraws` with the draws of ``parts`` end to end: the equal-weight
    mixture of their posteriors. Every part must check the same reference."""
    if not parts:
        raise ValueError("no ATE draws to pool")
    first = parts[0]
    for part in parts[1:]:
        if not part.reference.equals(first.reference):
            raise ValueError("ATE draws of different references cannot be pooled")
        if (part.interval_draws is None) != (first.interval_draws is None):
            raise ValueError("pool ATE draws of one kind: all with interval draws or none")
    return ATEDraws(
        reference=first.reference,
        model_draws=np.concatenate([p.model_draws for p in parts]),
        interval_draws=None
        if first.interval_draws is None
        else np.concatenate([p.interval_draws for p in parts]),
        reference_se=first.reference_se,
    )


def perturbation_splits(conditions: np.ndarray, split: Split) -> pd.Series:
    """The split of each condition, from the split of its cells.

    A condition is ``"train"`` when any of its cells was trained on, else ``"validation"``
    when any was validated on, else ``"test"``: with a random split of cells every
    condition is ``"train"``; with held-out conditions, those are ``"test"``.

    Parameters
    ----------
    conditions
        The condition label of every cell of the data the split indexes.
    split
        The split (row indices into ``conditions``).
    """
    conditions = np.asarray(conditions, dtype=str)
    labels: dict[str, str] = {}
    for name, rows in (
        ("test", split.test),
        ("validation", split.validation),
        ("train", split.train),
    ):
        labels.update(dict.fromkeys(np.unique(conditions[rows]), name))
    return pd.Series(labels, name="split").rename_axis(CONDITION_LEVEL)


def pit_values(
    reference: np.ndarray, draws: np.ndarray, se: np.ndarray | None = None
) -> np.ndarray:
    """Probability-integral-transform values: the model's CDF at each reference entry.

    Without ``se`` the CDF is the empirical one of the draws (ties count half). With
    ``se``, the reference's own standard error, it is the CDF of the draws convolved with
    ``N(0, se²)``: the distribution the reference would have if the model were right. An
    entry lies inside the central interval of level ``q`` when ``|u - 0.5| <= q / 2``.
    """
    if se is None:
        return (draws < reference).mean(axis=0) + 0.5 * (draws == reference).mean(axis=0)
    return ndtr((reference - draws) / np.maximum(se, 1e-12)).mean(axis=0)


def interval_bounds(
    draws: np.ndarray, level: float, se: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed interval at ``level`` of the draws (draws on axis 0), convolved with
    ``N(0, se²)`` when ``se`` is given (bisection on the mixture CDF)."""
    tail = (1.0 - level) / 2.0
    if se is None:
        return np.quantile(draws, tail, axis=0), np.quantile(draws, 1.0 - tail, axis=0)
    se = np.maximum(se, 1e-12)
    bounds = []
    for q in (tail, 1.0 - tail):
        low, high = draws.min(axis=0) - 9 * se, draws.max(axis=0) + 9 * se
        for _ in range(40):  # the bracket shrinks by 2**40
            middle = (low + high) / 2
            below = ndtr((middle - draws) / se).mean(axis=0) < q
            low, high = np.where(below, middle, low), np.where(below, high, middle)
        bounds.append((low + high) / 2)
    return bounds[0], bounds[1]


def _inside(pit: np.ndarray, level: float) -> np.ndarray:
    return np.abs(pit - 0.5) <= level / 2 + 1e-12


def _condition_of(index: pd.Index) -> np.ndarray:
    if isinstance(index, pd.MultiIndex):
        return np.asarray(index.get_level_values(CONDITION_LEVEL), dtype=str)
    return np.asarray(index, dtype=str)


def summarise_ate(
    reference: pd.DataFrame,
    model_draws: np.ndarray,
    *,
    interval_draws: np.ndarray | None = None,
    reference_se: pd.DataFrame | None = None,
    splits: pd.Series | None = None,
    level: float = 0.9,
    top_n: int = 20,
    levels: tuple[float, ...] = CALIBRATION_LEVELS,
) -> ATECheck:
    """Agreement and calibration of posterior ATE draws with a reference ATE table.

    Parameters
    ----------
    reference
        Rows (conditions, or ``(context, condition)``) x genes.
    model_draws
        Draws x rows x genes of the model's population ATE, rows and genes as in
        ``reference``. Their mean is the model's point estimate (Pearson, R²); their
        quantiles are the credible intervals.
    interval_draws
        Optional draws x rows x genes of a replicated statistic (the data ATE of replicated
        cells). When given, coverage and calibration use their intervals ("predictive"),
        and ``coverage_credible`` reports the credible intervals beside them.
    reference_se
        Optional standard error of the reference (rows x genes), when it is itself an
        estimate (a simulator's Monte Carlo truth): the checked intervals are those of the
        draws convolved with ``N(0, se²)`` ("credible+reference_se"), and
        ``coverage_credible`` reports the plain credible intervals beside them.
    splits
        Split label per condition (e.g. from :func:`perturbation_splits`); conditions
        missing from it are labelled ``"unknown"``. Metrics are reported for all rows and
        per split.
    level
        Nominal level of the reported intervals.
    top_n
        Genes per row, by largest ``|reference|``, of the ``*_top20`` metrics.
    levels
        Nominal levels of the calibration curve.
    """
    if model_draws.shape[1:] != reference.shape:
        raise ValueError(
            f"model draws have shape {model_draws.shape[1:]} per draw, the reference {reference.shape}"
        )
    ref = reference.to_numpy(dtype=float)
    point = pd.DataFrame(model_draws.mean(axis=0), index=reference.index, columns=reference.columns)
    checked = model_draws if interval_draws is None else interval_draws
    se = None
    if reference_se is not None:
        se = reference_se.loc[reference.index, reference.columns].to_numpy(dtype=float)
    pit = pit_values(ref, checked, se)
    credible_pit = pit_values(ref, model_draws)
    lower, upper = interval_bounds(checked, level, se)
    inside = _inside(pit, level)
    inside_credible = _inside(credible_pit, level)
    if interval_draws is not None:
        interval = "predictive"
    else:
        interval = "credible" if se is None else "credible+reference_se"

    conditions = _condition_of(reference.index)
    split_of = (
        np.full(len(conditions), ALL)
        if splits is None
        else pd.Series(conditions).map(splits).fillna("unknown").to_numpy(dtype=str)
    )
    groups = [ALL] + ([] if splits is None else sorted(set(split_of)))
    metrics = {}
    for group in groups:
        rows = np.ones(len(conditions), bool) if group == ALL else split_of == group
        ref_g, point_g = reference[rows], point[rows]
        row = {
            "n_perturbations": float(rows.sum()),
            "pearson": ate_pearson(point_g, ref_g),
            "r2": ate_r2(point_g, ref_g),
            f"pearson_top{top_n}": ate_pearson(point_g, ref_g, top_n=top_n),
            f"r2_top{top_n}": ate_r2(point_g, ref_g, top_n=top_n),
            "coverage": float(inside[rows].mean()),
            "nominal": level,
        }
        if interval != "credible":
            row["coverage_credible"] = float(inside_credible[rows].mean())
        metrics[group] = row

    per_perturbation = pd.DataFrame(
        {
            "pearson": _row_pearson(point.to_numpy(), ref),
            "r2": _row_r2(point.to_numpy(), ref),
            "coverage": inside.mean(axis=1),
            "split": split_of,
        },
        index=reference.index,
    )
    calibration = pd.DataFrame(
        {
            "nominal": list(levels),
            "coverage": [float(_inside(pit, q).mean()) for q in levels],
        }
    )
    long = _long_table(reference, point, lower, upper, split_of)
    return ATECheck(
        table=long,
        metrics=pd.DataFrame(metrics).T.rename_axis("split"),
        per_perturbation=per_perturbation,
        calibration=calibration,
        reference=reference,
        prediction=point,
        interval=interval,
        level=level,
    )


def _row_pearson(predicted: np.ndarray, reference: np.ndarray) -> np.ndarray:
    p = predicted - predicted.mean(axis=1, keepdims=True)
    r = reference - reference.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (p * r).sum(axis=1) / np.sqrt((p**2).sum(axis=1) * (r**2).sum(axis=1))


def _row_r2(predicted: np.ndarray, reference: np.ndarray) -> np.ndarray:
    total = ((reference - reference.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 - ((reference - predicted) ** 2).sum(axis=1) / total


def _long_table(
    reference: pd.DataFrame,
    point: pd.DataFrame,
    lower: np.ndarray,
    upper: np.ndarray,
    split_of: np.ndarray,
) -> pd.DataFrame:
    n_rows, n_genes = reference.shape
    index = reference.index
    columns = (
        {name: np.repeat(index.get_level_values(name), n_genes) for name in index.names}
        if isinstance(index, pd.MultiIndex)
        else {CONDITION_LEVEL: np.repeat(np.asarray(index), n_genes)}
    )
    columns.update(
        {
            "gene": np.tile(np.asarray(reference.columns), n_rows),
            "reference": reference.to_numpy().ravel(),
            "model": point.to_numpy().ravel(),
            "lower": lower.ravel(),
            "upper": upper.ravel(),
            "split": np.repeat(split_of, n_genes),
        }
    )
    return pd.DataFrame(columns)
