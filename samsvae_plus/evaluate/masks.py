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
