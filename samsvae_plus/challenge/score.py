"""The Virtual Cell Challenge scorer: PDS, DES, MAE and the baseline-normalised score.

Numbers match cell-eval 0.8.x (``cell-eval run --profile vcc`` followed by
``cell-eval score``), the challenge's reference implementation. Both files are normalised
on their own and summarised (pseudobulks and a sparse Mann-Whitney U test of every
perturbation against the file's own control, see
:mod:`~samsvae_plus.challenge.summary`), and the metrics in
:data:`~samsvae_plus.challenge.metrics.REGISTRY` are computed from the two
summaries. Nothing is densified, so memory is bounded by the sparse inputs.

:func:`score_tables` is the whole computation without pandas; :func:`challenge_score`
wraps its result in pandas objects.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from samsvae_plus.challenge.baseline import baseline_summary
from samsvae_plus.challenge.inputs import check_input, check_pair, check_same_genes
from samsvae_plus.challenge.layout import SCORER_KEY, VCC_CONTROL_LABEL
from samsvae_plus.challenge.metrics import (
    REGISTRY,
    significant,
)
from samsvae_plus.challenge.summary import FileSummary, summarise_file
from samsvae_plus.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

# pandas is imported only where a DataFrame or Series is built (ChallengeResult), so that
# the scoring itself, and `samsvae-plus score`, start without it.

# Keys of the per-perturbation table, in order.
PER_PERTURBATION_COLUMNS = [
    *REGISTRY,
    "de_nsig_real",
    "de_nsig_pred",
    "n_cells_real",
    "n_cells_pred",
]
# Reported with the means: 1 - 2 mean(rank/N), 0 for a random guess and 1 when perfect.
CENTERED_PDS = "discrimination_score_l1_centered"
_INTEGER_COLUMNS = ("de_nsig", "n_cells")


@dataclass(frozen=True)
class ChallengeResult:
    """Scores of one prediction.

    Attributes
    ----------
    per_perturbation
        One row per perturbation (index ``perturbation``), columns
        :data:`PER_PERTURBATION_COLUMNS`.
    mean
        Mean over perturbations of each metric, plus ``discrimination_score_l1_centered``.
    baseline_mean
        The same means for the baseline, or None without a baseline.
    score
        Per-metric improvement over the baseline (clipped below at 0), ``avg_score`` and
        ``leaderboard_x100``; None without a baseline.
    """

    per_perturbation: pd.DataFrame
    mean: pd.Series
    baseline_mean: pd.Series | None
    score: pd.Series | None

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON-ready dicts (the layout ``samsvae-plus score`` writes)."""
        table = self.per_perturbation
        return ScoreTables(
            labels=table.index.to_numpy(),
            columns={column: table[column].to_numpy() for column in table.columns},
            mean=dict(self.mean),
            baseline_mean=None if self.baseline_mean is None else dict(self.baseline_mean),
            score=None if self.score is None else dict(self.score),
        ).to_dict()


@dataclass(frozen=True)
class ScoreTables:
    """The numbers of a :class:`ChallengeResult` as numpy arrays and dicts (no pandas).

    Attributes
    ----------
    labels
        Perturbations, sorted.
    columns
        One array per column of :data:`PER_PERTURBATION_COLUMNS`, aligned with ``labels``.
    mean, baseline_mean, score
        As in :class:`ChallengeResult`, as dicts in the same order.
    """

    labels: np.ndarray
    columns: dict[str, np.ndarray]
    mean: dict[str, float]
    baseline_mean: dict[str, float] | None
    score: dict[str, float] | None

    def to_dict(self) -> dict[str, Any]:
        """The plain JSON-ready dicts that ``samsvae-plus score`` writes (and
        :meth:`ChallengeResult.to_dict` returns), built without pandas."""
        per = {}
        for i, label in enumerate(self.labels.tolist()):
            per[str(label)] = {
                column: (
                    int(self.columns[column][i])
                    if column.startswith(_INTEGER_COLUMNS)
                    else float(self.columns[column][i])
                )
                for column in PER_PERTURBATION_COLUMNS
            }

        def floats(values: dict[str, float]) -> dict[str, float]:
            return {k: float(v) for k, v in values.items()}

        return {
            "per_perturbation": per,
            "mean": floats(self.mean),
            "baseline": None
            if self.baseline_mean is None
            else {"mean": floats(self.baseline_mean)},
            "score": None if self.score is None else floats(self.score),
        }

    def to_result(self) -> ChallengeResult:
        """The pandas form, :class:`ChallengeResult`."""
        import pandas as pd

        index = pd.Index(self.labels.astype(str), name="perturbation")
        table = pd.DataFrame(self.columns, index=index)[PER_PERTURBATION_COLUMNS]
        return ChallengeResult(
            per_perturbation=table,
            mean=pd.Series(self.mean),
            baseline_mean=None if self.baseline_mean is None else pd.Series(self.baseline_mean),
            score=None if self.score is None else pd.Series(self.score),
        )


def _columns(
    real: FileSummary, pred: FileSummary, genes: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Per-perturbation columns and their means (with the centred PDS)."""
    columns = {name: metric.compute(real, pred, genes) for name, metric in REGISTRY.items()}
    columns["de_nsig_real"] = significant(real).sum(axis=1)
    columns["de_nsig_pred"] = significant(pred).sum(axis=1)
    columns["n_cells_real"] = real.n_cells
    columns["n_cells_pred"] = pred.n_cells
    means = {name: float(np.mean(columns[name])) for name in REGISTRY}
    # 1 - 2 mean(rank/N) is 2 mean(PDS) - 1, since PDS = 1 - rank/N.
    means[CENTERED_PDS] = 2.0 * means["discrimination_score_l1"] - 1.0
    return columns, means


def _normalised_scores(user, baseline) -> dict[str, float]:
    """:func:`score_against_baseline` on anything indexed by metric name."""
    # Lower-is-better metrics first, as the reference averages them in that order.
    names = [n for n, m in REGISTRY.items() if m.best == 0.0]
    names += [n for n, m in REGISTRY.items() if m.best == 1.0]
    values = np.array([REGISTRY[n].normalise(user[n], baseline[n]) for n in names])
    values[np.isnan(values)] = 0.0
    values = np.clip(values, 0.0, None)
    by_name = dict(zip(names, values.tolist(), strict=True))
    score = {name: by_name[name] for name in REGISTRY}
    average = float(values.mean())
    score["avg_score"] = average
    score["leaderboard_x100"] = 100.0 * average
    return score


def score_against_baseline(user: pd.Series, baseline: pd.Series) -> pd.Series:
    """Normalise the user's means by the baseline's and average them.

    Lower-is-better metrics score ``1 - u/b``; higher-is-better ones ``(u - b)/(1 - b)``;
    NaN becomes 0 and negatives are clipped to 0. ``avg_score`` is the mean of the
    metric scores and ``leaderboard_x100`` is 100 times that.

    Parameters
    ----------
    user, baseline
        Means per metric (at least every registered metric).

    Returns
    -------
    pandas.Series
    """
    import pandas as pd

    return pd.Series(_normalised_scores(user, baseline))


def challenge_score(
    pred,
    real,
    *,
    perturbation_key: str = SCORER_KEY,
    control_label: str = VCC_CONTROL_LABEL,
    baseline=None,
    reference=None,
) -> ChallengeResult:
    """Score a prediction as the Virtual Cell Challenge does (cell-eval's ``vcc`` profile).

    Parameters
    ----------
    pred
        Predicted AnnData: cells x genes, raw counts or log1p, with control cells.
    real
        Real AnnData with the same genes in the same order and the same labels.
    perturbation_key
        ``obs`` column holding each cell's perturbation label.
    control_label
        Label of the control cells.
    baseline
        Optional baseline prediction AnnData, scored like ``pred`` to normalise the score.
    reference
        Optional AnnData (normally the training data) from which the cell-mean baseline is
        built without materialising it. Give at most one of ``baseline`` and
        ``reference``.

    Returns
    -------
    ChallengeResult
        Per-perturbation table, means, and (with a baseline) the normalised score.

    Raises
    ------
    InputError
        On any problem with the inputs; nothing is computed before all are validated.

    Examples
    --------
    >>> import samsvae_plus as sp  # doctest: +SKIP
    >>> result = sp.metrics.challenge_score(pred, real, reference=train)  # doctest: +SKIP
    >>> result.score["avg_score"]  # doctest: +SKIP
    """
    return score_tables(
        pred,
        real,
        perturbation_key=perturbation_key,
        control_label=control_label,
        baseline=baseline,
        reference=reference,
    ).to_result()


def score_tables(
    pred,
    real,
    *,
    perturbation_key: str = SCORER_KEY,
    control_label: str = VCC_CONTROL_LABEL,
    baseline=None,
    reference=None,
) -> ScoreTables:
    """:func:`challenge_score` without pandas: the same numbers as :class:`ScoreTables`.

    The inputs may also be :class:`~samsvae_plus.challenge.files.ScorerFile` (h5ad
    files read without anndata), which ``samsvae-plus score`` uses to start quickly.
    """
    if baseline is not None and reference is not None:
        raise InputError(
            "both baseline and reference were given: pass one (reference builds the "
            "cell-mean baseline, baseline is an already built prediction)"
        )
    # The files are independent until the metrics, and the heavy calls (the compiled rank
    # statistics, numpy's sorts and ufuncs) release the GIL, so two threads use two cores:
    # for the checks as for the summaries.
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        pred_in, real_in = check_pair(
            pred,
            real,
            perturbation_key=perturbation_key,
            control_label=control_label,
            executor=pool,
        )
        base_in = ref_in = None
        if baseline is not None:
            base_in, _ = check_pair(
                baseline,
                real_in,
                perturbation_key=perturbation_key,
                control_label=control_label,
                pred_name="baseline",
                executor=pool,
            )
        if reference is not None:
            ref_in = check_input(reference, "reference", perturbation_key, control_label)
            check_same_genes(real_in, ref_in)

        real_job = pool.submit(summarise_file, real_in, control_label)
        pred_job = pool.submit(summarise_file, pred_in, control_label)
        base_job = None
        if base_in is not None:
            base_job = pool.submit(summarise_file, base_in, control_label)
        real_summary, pred_summary = real_job.result(), pred_job.result()
        if ref_in is not None:
            base_job = pool.submit(baseline_summary, ref_in, real_summary, control_label)
        base_summary = None if base_job is None else base_job.result()

    genes = real_in.genes
    columns, mean = _columns(real_summary, pred_summary, genes)
    labels = real_summary.labels
    if base_summary is None:
        return ScoreTables(labels, columns, mean, None, None)
    _, base_mean = _columns(real_summary, base_summary, genes)
    return ScoreTables(labels, columns, mean, base_mean, _normalised_scores(mean, base_mean))


def _workers() -> int:
    """Two threads where the process may use two cores (affinity respected), else one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(2, cores))
