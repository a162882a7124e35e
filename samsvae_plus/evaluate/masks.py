"""Learned sparse masks against a reference: ground truth on simulations, pathways on real data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment


@dataclass(frozen=True)
class MaskRecovery:
    """Mask recovery after matching learned latent dimensions to true ones."""

    f1: float
    precision: float
    recall: float
    matching: dict[int, int]  # true dimension -> learned dimension

    def to_dict(self) -> dict:
        return {
            "f1": self.f1,
            "precision": self.precision,
            "recall": self.recall,
            "matching": {str(k): int(v) for k, v in self.matching.items()},
        }


def mask_recovery(
    true_mask: np.ndarray, learned: pd.DataFrame | np.ndarray, *, threshold: float = 0.5
) -> MaskRecovery:
    """F1 of learned against true masks, after Hungarian matching of latent dimensions.

    Learned dimensions are matched one-to-one to true dimensions so as to maximise the
    number of perturbations active in both (the overlap of the binary masks). Learned
    dimensions left unmatched count as false positives wherever they are active, so
    spreading an effect over spare dimensions is penalised.

    Parameters
    ----------
    true_mask
        Perturbations x true latent dimensions, binary.
    learned
        Perturbations x learned dimensions: probabilities (thresholded at ``threshold``)
        or a binary mask, rows in the same perturbation order as ``true_mask``.
    """
    truth = np.asarray(true_mask).astype(bool)
    predicted = np.asarray(learned, dtype=float) > threshold
    if truth.shape[0] != predicted.shape[0]:
        raise ValueError(
            f"masks cover {truth.shape[0]} and {predicted.shape[0]} perturbations; align the rows first"
        )
    overlap = truth.T.astype(float) @ predicted.astype(float)  # true dims x learned dims
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    true_positive = overlap[rows, cols].sum()
    n_predicted, n_true = predicted.sum(), truth.sum()
    precision = true_positive / n_predicted if n_predicted else 0.0
    recall = true_positive / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return MaskRecovery(
        float(f1),
        float(precision),
        float(recall),
        dict(zip(rows.tolist(), cols.tolist(), strict=True)),
    )


@dataclass(frozen=True)
class PathwayAccuracy:
    """Leave-one-out k-nearest-neighbour prediction of pathways from mask vectors."""

    accuracy: float
    majority_rate: float  # accuracy of always naming the most common pathway
    p_value: float  # permutation test of the accuracy against shuffled labels
    n_labelled: int
    n_classes: int
    k: int
    predictions: pd.Series  # perturbation -> predicted pathway

    def to_dict(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "majority_rate": self.majority_rate,
            "p_value": self.p_value,
            "n_labelled": self.n_labelled,
            "n_classes": self.n_classes,
            "k": self.k,
        }


def _vote(neighbour_labels: np.ndarray) -> np.ndarray:
    """Majority label of each row of neighbour labels (nearest first); a tie goes to the
    tied label whose member is nearest."""
    out = np.empty(len(neighbour_labels), dtype=neighbour_labels.dtype)
    for i, row in enumerate(neighbour_labels):
        values, first, counts = np.unique(row, return_index=True, return_counts=True)
        tied = counts == counts.max()
        out[i] = values[tied][np.argmin(first[tied])]
    return out


def knn_pathway_accuracy(
    features: pd.DataFrame,
    labels: pd.Series,
    *,
    k: int = 3,
    n_permutations: int = 1000,
    seed: int = 0,
) -> PathwayAccuracy:
    """How well a perturbation's mask vector predicts its pathway, leaving it out.

    Each labelled perturbation is classified by the majority pathway of its ``k`` nearest
    other labelled perturbations (Euclidean distance between mask-probability vectors;
    ties in distance broken by order, ties in the vote by the nearest). The
    majority-class rate is the score of a classifier that ignores the masks; the p-value
    is the share of ``n_permutations`` label shufflings that score at least as well.

    Parameters
    ----------
    features
        Perturbations x latent dimensions (``model.mask_probabilities()``).
    labels
        Perturbation -> pathway (:func:`~samsvae_plus.evaluate.gene_sets.assign_pathways`);
        missing labels are left out. Fewer than two labelled perturbations, or a single
        pathway among them, give NaN scores.
    """
    labels = labels.dropna()
    labels = labels[labels.index.isin(features.index)]
    n = len(labels)
    # With one pathway every vote is right whatever the masks are: nothing is measured.
    if n < 2 or labels.nunique() < 2 or k < 1:
        return PathwayAccuracy(
            float("nan"),
            float("nan"),
            float("nan"),
            n,
            labels.nunique(),
            k,
            pd.Series(dtype=object),
        )
    x = features.loc[labels.index].to_numpy(dtype=float)
    distance = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(distance, np.inf)
    neighbours = np.argsort(distance, axis=1, kind="stable")[:, : min(k, n - 1)]
    codes, classes = pd.factorize(labels)
    predicted = _vote(codes[neighbours])
    accuracy = float((predicted == codes).mean())
    rng = np.random.default_rng(seed)
    null = np.array(
        [
            (_vote(p[neighbours]) == p).mean()
            for p in (rng.permutation(codes) for _ in range(n_permutations))
        ]
    )
    return PathwayAccuracy(
        accuracy=accuracy,
        majority_rate=float(np.bincount(codes).max() / n),
        p_value=float((1 + (null >= accuracy).sum()) / (1 + n_permutations)),
        n_labelled=n,
        n_classes=len(classes),
        k=int(neighbours.shape[1]),
        predictions=pd.Series(np.asarray(classes)[predicted], index=labels.index, name="predicted"),
    )


@dataclass(frozen=True)
class JaccardComparison:
    """Mean Jaccard similarity of binarised masks within and between pathways."""

    within: float
    between: float
    p_value: float  # permutation test of within - between against shuffled labels
    n_within_pairs: int
    n_between_pairs: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def mask_jaccard(
    mask_probabilities: pd.DataFrame,
    labels: pd.Series,
    *,
    threshold: float = 0.5,
    n_permutations: int = 1000,
    seed: int = 0,
) -> JaccardComparison:
    """Within- against between-pathway Jaccard similarity of the masks ``q(m) > threshold``.

    Pairs of labelled perturbations are compared; a pair whose masks are both empty has
    no Jaccard similarity and is left out.
    """
    labels = labels.dropna()
    labels = labels[labels.index.isin(mask_probabilities.index)]
    masks = mask_probabilities.loc[labels.index].to_numpy() > threshold
    both = masks.astype(float) @ masks.T.astype(float)
    sizes = masks.sum(axis=1)
    union = sizes[:, None] + sizes[None, :] - both
    upper = np.triu(np.ones_like(both, dtype=bool), k=1) & (union > 0)
    jaccard = np.divide(both, union, out=np.zeros_like(both), where=union > 0)[upper]
    codes = pd.factorize(labels)[0]

    def gap(c: np.ndarray) -> tuple[float, float, np.ndarray]:
        same = (c[:, None] == c[None, :])[upper]
        within = jaccard[same].mean() if same.any() else np.nan
        between = jaccard[~same].mean() if (~same).any() else np.nan
        return within, between, same

    within, between, same = gap(codes)
    rng = np.random.default_rng(seed)
    observed = within - between
    null = np.array([np.subtract(*gap(rng.permutation(codes))[:2]) for _ in range(n_permutations)])
    p_value = (
        float((1 + (null >= observed).sum()) / (1 + n_permutations))
        if np.isfinite(observed)
        else float("nan")
    )
    return JaccardComparison(
        within=float(within),
        between=float(between),
        p_value=p_value,
        n_within_pairs=int(same.sum()),
        n_between_pairs=int((~same).sum()),
    )
