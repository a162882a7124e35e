"""Expression transforms shared by the simulator, the evaluation and the plots."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp

ATE_TARGET_SUM = 1e4


def log_normalize(counts, target_sum: float = ATE_TARGET_SUM) -> np.ndarray:
    """``log2(target_sum * x / sum(x) + 1)`` per cell, the scale on which ATEs are defined.

    Parameters
    ----------
    counts
        Cells x genes, dense or scipy sparse (densified; pass row blocks for large data).
    target_sum
        Total each cell is scaled to before the log.
    """
    if sp.issparse(counts):
        counts = counts.toarray()
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=-1, keepdims=True)
    return np.log2(target_sum * counts / np.maximum(totals, 1e-12) + 1)


# The encoder reads log1p(ENCODER_TARGET_SUM * x / library size): depth-normalised, because
# the likelihood receives the library size explicitly and z_basal should not encode depth.
ENCODER_TARGET_SUM = 1e4


def encoder_input_statistics(
    counts: sp.csr_matrix, library_size: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene mean and standard deviation of the encoder input over the given cells.

    Computed from the stored non-zeros only (a zero count maps to zero), so the training
    matrix is never densified.
    """
    return encoder_input_statistics_of_blocks([(counts, library_size)])


def encoder_input_statistics_of_blocks(
    blocks: Iterable[tuple[sp.csr_matrix, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`encoder_input_statistics` over cells given as ``(counts, library_size)`` row
    blocks, accumulated block by block so that out-of-core data stay out of memory."""
    n, total, total_sq = 0, 0.0, 0.0
    for counts, library_size in blocks:
        counts = sp.csr_matrix(counts, dtype=np.float64)
        scale = ENCODER_TARGET_SUM / np.asarray(library_size, dtype=np.float64)
        values = counts.copy()
        values.data = np.log1p(values.data * np.repeat(scale, np.diff(values.indptr)))
        n += counts.shape[0]
        total = total + np.asarray(values.sum(axis=0)).ravel()
        total_sq = total_sq + np.asarray(values.multiply(values).sum(axis=0)).ravel()
    mean = total / n
    std = np.sqrt(np.maximum(total_sq / n - mean**2, 0.0))
    return mean.astype(np.float32), std.astype(np.float32)
