"""Every group of a file against its control in one compiled pass: the fast rank sums.

The same numbers as the per-group path
(:func:`~samsvae_plus.challenge.summary.summarise_file_per_group`: pseudobulk sums, U1,
tie term and pooled non-zeros of every group against group 0, the control), bit for bit,
computed by the C extension ``_rank_stats`` (``_rank_stats.c``, built at install time).
The extension is optional: where no compiler was available, :func:`available` is False
(see :mod:`~samsvae_plus.challenge.compiled`) and the scorer takes the per-group path.

How it works. Counts are read raw and normalised on the way through a per-cell table
of ``log1p(c / scale)`` (:class:`CountSource`), so no normalised copy of the file is
made. A counting sort lays each gene's non-zero values out as a column, visiting the
cells by decreasing size factor; each column, now in cache, is split by raw count
(clipped), and since ``log1p(c / s)`` ascends as ``s`` falls each part already ascends,
so sorting a column is merging a few runs, from the last (rarest counts) back. A run
found out of order is sorted, so the visiting order changes the speed only. One pass
over the sorted column then counts, per group, the control values below each value and
the run sizes of equal values, which give U1 and the tie term in the closed form of
:mod:`~samsvae_plus.challenge.differential_expression`. Every term is a multiple of 1/2
below 2**53, so they are exact in float64 whatever the order of summation; the sums are
accumulated in the file's row order, as the per-group path does.

Memory: 8 bytes per stored value for float32 data (16 for float64), plus two columns
and, for counts, the table (at most one entry per stored value).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from samsvae_plus.challenge import compiled
from samsvae_plus.challenge.pseudobulk import divided_log1p, log1p_table, table_width


@dataclass(frozen=True)
class JointStats:
    """What the test and the pseudobulks need of every group of one file.

    Group 0 is the control; the arrays of the test cover groups 1.. only.

    Attributes
    ----------
    sums
        float64 sum of each group's values per gene (groups x genes), control first.
    u1
        U statistic of each non-control group against the control (groups-1 x genes).
    tie
        Tie term of the pooled sample (groups-1 x genes).
    nonzero
        Non-zero values in the group and the control together (groups-1 x genes).
    """

    sums: np.ndarray
    u1: np.ndarray
    tie: np.ndarray
    nonzero: np.ndarray


def available() -> bool:
    """Whether the compiled extension was built (it is optional at install time)."""
    return compiled.kernels is not None


@dataclass(frozen=True)
class CountSource:
    """Raw counts, normalised inside the kernel as they are read.

    The normalised value of an integer count ``c < width`` in row ``r`` is
    ``table[r, c]``; every other stored value is listed, in file order, in
    ``rest_positions`` with its normalised value in ``rest_values``. The sort hint's
    bucket of a value is its raw count, truncated and clipped to ``n_buckets - 1``.

    Attributes
    ----------
    table
        rows x width, in the data dtype.
    rest_positions
        int64 positions (in the CSR data) of the values the table does not cover,
        ascending.
    rest_values
        Their normalised values, in the data dtype.
    n_buckets
        Number of sort-hint buckets (at most 256).
    """

    table: np.ndarray
    rest_positions: np.ndarray
    rest_values: np.ndarray
    n_buckets: int


def count_source(
    data: np.ndarray, indptr: np.ndarray, scale: np.ndarray, n_buckets: int
) -> CountSource:
    """The :class:`CountSource` of raw CSR counts whose rows are divided by ``scale``
    before ``log1p``: the same float operations as ``pseudobulk._scale_log1p``, which
    :meth:`~samsvae_plus.challenge.pseudobulk.Normalised.block` uses, so the same bits."""
    if compiled.kernels is None:
        raise RuntimeError(_NOT_BUILT)
    width = table_width(int(indptr[-1]), scale.size)
    table = log1p_table(scale, width)
    values = np.ascontiguousarray(data[: indptr[-1]])
    rest = np.frombuffer(compiled.kernels.rest_positions(values, width), dtype=np.int64)
    rows = np.searchsorted(indptr, rest, side="right") - 1
    return CountSource(table, rest, divided_log1p(values[rest], scale[rows]), n_buckets)


_NOT_BUILT = (
    "the compiled rank statistics are not built: reinstall samsvae-plus with a C "
    "compiler, or use summary.summarise_file_per_group"
)


def rank_stats(
    data: np.ndarray,
    indices: np.ndarray,
    indptr: np.ndarray,
    group_of_row: np.ndarray,
    sizes: np.ndarray,
    n_genes: int,
    row_order: np.ndarray | None = None,
    counts: CountSource | None = None,
) -> JointStats:
    """Pseudobulk sums and rank sums of every group against group 0, the control.

    Parameters
    ----------
    data, indices, indptr
        The file as CSR arrays (cells x genes), float32 or float64: normalised values,
        or raw counts when ``counts`` says how to normalise them. Values are
        non-negative and not NaN (validated upstream); zeros are ignored.
    group_of_row
        Group of each cell, 0 for the control.
    sizes
        Cells per group (group 0 first); only its length is used, as the number of groups.
    n_genes
        Number of genes.
    row_order
        Optional order in which cells are laid out (the sort hint); any order gives the
        same numbers.
    counts
        Optional :class:`CountSource`: ``data`` are raw counts, normalised as read.

    Returns
    -------
    JointStats
    """
    if compiled.kernels is None:
        raise RuntimeError(_NOT_BUILT)
    n_groups = int(np.asarray(sizes).size)
    sums = np.empty((n_groups, n_genes))
    u1, tie, nonzero = (np.empty((n_groups - 1, n_genes)) for _ in range(3))
    values = np.ascontiguousarray(data)
    if values.dtype not in (np.float32, np.float64):
        values = values.astype(np.float64)
    compiled.kernels.rank_stats(
        values,
        np.ascontiguousarray(indices, dtype=np.int32),
        np.ascontiguousarray(indptr, dtype=np.int64),
        np.ascontiguousarray(group_of_row, dtype=np.int32),
        n_groups,
        int(n_genes),
        None if row_order is None else np.ascontiguousarray(row_order, dtype=np.int64),
        None if counts is None else np.ascontiguousarray(counts.table, dtype=values.dtype),
        1 if counts is None else int(counts.table.shape[1]),
        None if counts is None else np.ascontiguousarray(counts.rest_positions, np.int64),
        None if counts is None else np.ascontiguousarray(counts.rest_values, values.dtype),
        1 if counts is None else int(counts.n_buckets),
        sums,
        u1,
        tie,
        nonzero,
    )
    return JointStats(sums=sums, u1=u1, tie=tie, nonzero=nonzero)
