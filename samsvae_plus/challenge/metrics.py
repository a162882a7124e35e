"""The challenge metrics, in a registry that records each metric's best value.

Each metric maps a (real, prediction) pair of :class:`FileSummary` to one value per
perturbation. The best value decides how a mean is normalised against a baseline:
``1 - u/b`` for metrics whose best is 0, ``(u - b)/(1 - b)`` for metrics whose best is 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from samsvae_plus.challenge.summary import FileSummary

# A gene is differentially expressed when its float32 FDR is below this.
FDR_THRESHOLD = 0.05


@dataclass(frozen=True)
class ChallengeMetric:
    """A registered metric.

    Attributes
    ----------
    name
        Column name in the result tables.
    best
        The best value, 1.0 (higher is better) or 0.0 (lower is better).
    description
        One line for reports.
    compute
        ``compute(real, pred, genes) -> values`` with one value per perturbation.
    """

    name: str
    best: float
    description: str
    compute: Callable[[FileSummary, FileSummary, np.ndarray], np.ndarray]

    def normalise(self, user: float, baseline: float) -> float:
        """Improvement of ``user`` over ``baseline`` (NaN where undefined)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.best == 0.0:
                return float(1.0 - np.float64(user) / np.float64(baseline))
            return float((np.float64(user) - baseline) / (1.0 - np.float64(baseline)))


def mean_absolute_error(real: FileSummary, pred: FileSummary, genes: np.ndarray) -> np.ndarray:
    """Mean over genes of |pseudobulk_pred - pseudobulk_real|, per perturbation."""
    # Row by row in the data dtype, as the reference does: a float32 mean of float32 errors.
    return np.array(
        [float(np.mean(np.abs(p - r))) for p, r in zip(pred.means, real.means, strict=True)]
    )


def discrimination_ranks(real: FileSummary, pred: FileSummary, genes: np.ndarray) -> np.ndarray:
    """0-based rank of each perturbation among all real perturbations, by L1 distance.

    Effects are pseudobulks minus the file's own control pseudobulk. The gene named like
    the perturbation (its target) is left out of that perturbation's distances.
    """
    real_delta = (real.means - real.control_mean).astype(np.float64)
    pred_delta = (pred.means - pred.control_mean).astype(np.float64)
    names = np.asarray(genes)
    ranks = np.empty(len(real.labels), dtype=np.int64)
    for p, label in enumerate(real.labels):
        keep = names != label
        if keep.all():
            distances = np.abs(real_delta - pred_delta[p]).sum(axis=1)
        else:
            distances = np.abs(real_delta[:, keep] - pred_delta[p, keep]).sum(axis=1)
        ranks[p] = int(np.flatnonzero(np.argsort(distances) == p)[0])
    return ranks


def discrimination_score_l1(real: FileSummary, pred: FileSummary, genes: np.ndarray) -> np.ndarray:
    """PDS: 1 - rank/N, where rank is the position of the true perturbation (best 1)."""
    return 1.0 - discrimination_ranks(real, pred, genes) / len(real.labels)


def significant(summary: FileSummary) -> np.ndarray:
    """Boolean perturbations x genes: FDR below the threshold."""
    return summary.fdr < np.float32(FDR_THRESHOLD)


def overlap_at_n(real: FileSummary, pred: FileSummary, genes: np.ndarray) -> np.ndarray:
    """DES: share of the k real DE genes among the prediction's top k DE genes by |lfc|.

    The prediction's DE genes are ordered by |lfc| descending (infinite first, ties in
    gene order); the score is 0 when the real perturbation has no DE gene.
    """
    real_sig, pred_sig = significant(real), significant(pred)
    scores = np.zeros(len(real.labels))
    for p in range(len(real.labels)):
        k = int(real_sig[p].sum())
        if k == 0:
            continue
        candidates = np.flatnonzero(pred_sig[p])
        order = np.argsort(-np.abs(pred.lfc[p, candidates]), kind="stable")
        top = candidates[order[:k]]
        scores[p] = real_sig[p, top].sum() / k
    return scores


REGISTRY: dict[str, ChallengeMetric] = {
    metric.name: metric
    for metric in (
        ChallengeMetric(
            "overlap_at_N",
            1.0,
            "DES: overlap of the top-k predicted DE genes with the k real DE genes",
            overlap_at_n,
        ),
        ChallengeMetric(
            "mae",
            0.0,
            "Mean absolute error between pseudobulks",
            mean_absolute_error,
        ),
        ChallengeMetric(
            "discrimination_score_l1",
            1.0,
            "PDS: 1 - normalised rank of the true perturbation by L1 distance of effects",
            discrimination_score_l1,
        ),
    )
}
