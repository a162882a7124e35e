"""Every group of a file against its control in one compiled pass: the fast rank sums.

The same numbers as :func:`~samsvae_plus.evaluate.joint_ranks.joint_stats` (pseudobulk
sums, U1, tie term and pooled non-zeros of every group against group 0, the control),
bit for bit, computed by the C extension ``_rank_stats`` (``_rank_stats.c``, built at
install time). The extension is optional: where no compiler was available,
:func:`available` is False and the scorer takes its numpy paths.

How it works. A counting sort lays each gene's non-zero values out as a column, visiting
the cells in the :class:`~samsvae_plus.evaluate.joint_ranks.SortHint`'s order and
splitting the column by the hint's buckets; for counts (bucket = raw count, cells by
decreasing size factor) each bucket's values then already ascend, so sorting a column is
merging a few runs, from the last (rarest counts) back. A run found out of order is
sorted, so the hint changes the speed only. One pass over the sorted column then counts,
per group, the control values below each value and the run sizes of equal values, which
give U1 and the tie term in closed form (see :mod:`~samsvae_plus.evaluate.joint_ranks`). Every term is a multiple of 1/2
below 2**53, so they are exact in float64 whatever the order of summation; the sums are
accumulated in the file's row order, as the numpy paths do.

Memory: 8 bytes per stored value for float32 data (16 for float64), plus one column.
"""

from __future__ import annotations

import numpy as np

from samsvae_plus.evaluate.joint_ranks import JointStats, SortHint

try:
    from samsvae_plus.evaluate import _rank_stats
except ImportError:  # built without a C compiler: the numpy paths serve
    _rank_stats = None


def available() -> bool:
    """Whether the compiled extension was built (it is optional at install time)."""
    return _rank_stats is not None


def rank_stats(
    data: np.ndarray,
    indices: np.ndarray,
    indptr: np.ndarray,
    group_of_row: np.ndarray,
    sizes: np.ndarray,
    n_genes: int,
    hint: SortHint | None = None,
) -> JointStats:
    """Pseudobulk sums and rank sums of every group against group 0, the control.

    Parameters
    ----------
    data, indices, indptr
        The normalised file as CSR arrays (cells x genes), float32 or float64, values
        non-negative and not NaN (validated upstream); stored zeros are ignored.
    group_of_row
        Group of each cell, 0 for the control.
    sizes
        Cells per group (group 0 first); only its length is used, as the number of groups.
    n_genes
        Number of genes.
    hint
        Optional :class:`~samsvae_plus.evaluate.joint_ranks.SortHint` (at most 256
        buckets).

    Returns
    -------
    JointStats
    """
    if _rank_stats is None:
        raise RuntimeError(
            "the compiled rank statistics are not built: reinstall samsvae-plus with a C "
            "compiler, or use joint_ranks.joint_stats"
        )
    n_groups = int(np.asarray(sizes).size)
    sums = np.empty((n_groups, n_genes))
    u1, tie, nonzero = (np.empty((n_groups - 1, n_genes)) for _ in range(3))
    values = np.ascontiguousarray(data)
    if values.dtype not in (np.float32, np.float64):
        values = values.astype(np.float64)
    _rank_stats.rank_stats(
        values,
        np.ascontiguousarray(indices, dtype=np.int32),
        np.ascontiguousarray(indptr, dtype=np.int64),
        np.ascontiguousarray(group_of_row, dtype=np.int32),
        n_groups,
        int(n_genes),
        None if hint is None else np.ascontiguousarray(hint.row_order, dtype=np.int64),
        None if hint is None else np.ascontiguousarray(hint.buckets, dtype=np.uint8),
        1 if hint is None else int(hint.n_buckets),
        sums,
        u1,
        tie,
        nonzero,
    )
    return JointStats(sums=sums, u1=u1, tie=tie, nonzero=nonzero)
