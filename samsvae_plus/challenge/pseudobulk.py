"""Per-group access to the normalised expression Y, and group means (pseudobulks).

The scorer never builds a dense Y. :meth:`Normalised.block` cuts one group's rows out of
the input, normalised (counts only), as a CSR block without zeros, so memory stays
bounded by the sparse input plus one group; :meth:`Normalised.raw_csr` gives the whole
file's values, not yet normalised, to the compiled path, which normalises them as it
reads them.

Normalisation reproduces scanpy's ``normalize_total`` followed by ``log1p`` bit for bit,
because the rank test downstream depends on exact values (ties, order across cells):
per-cell totals are rounded to the matrix dtype, the target is the median total (over all
cells for sparse input, over cells with a non-zero total for dense input), the division
and ``log1p`` happen in the output dtype, and cells with a zero total are left unscaled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from samsvae_plus.challenge.csr_arrays import as_scipy, is_sparse
from samsvae_plus.challenge.inputs import ScorerInput

if TYPE_CHECKING:
    import scipy.sparse as sp

# Stored values summed per step when computing cell totals.
_TOTALS_CHUNK = 1 << 22


@dataclass(frozen=True)
class CellGroups:
    """Cells grouped by label, labels sorted as strings (the order of every output table).

    Attributes
    ----------
    labels
        Sorted unique labels.
    sizes
        Number of cells per label.
    order
        Cell indices, grouped by label and ascending within a group.
    bounds
        ``order[bounds[i]:bounds[i + 1]]`` are the cells of ``labels[i]``.
    """

    labels: np.ndarray
    sizes: np.ndarray
    order: np.ndarray
    bounds: np.ndarray

    def rows(self, i: int) -> np.ndarray:
        """Cell indices of group ``i``, ascending."""
        return self.order[self.bounds[i] : self.bounds[i + 1]]

    def index(self, label: str) -> int:
        """Position of ``label`` in :attr:`labels`."""
        return int(np.searchsorted(self.labels, label))


def group_cells(labels: np.ndarray) -> CellGroups:
    """Group cell indices by label (only labels that occur, so unused categories vanish)."""
    unique, codes = np.unique(labels, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes, minlength=unique.size)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return CellGroups(labels=unique, sizes=sizes, order=order, bounds=bounds)


class Normalised:
    """Cut normalised, zero-free CSR blocks of cells out of one validated input.

    Parameters
    ----------
    inp
        The validated input. Counts are normalised to the file's median total and
        log1p-transformed; log1p input is only widened to float32 where needed.
    """

    def __init__(self, inp: ScorerInput) -> None:
        self.X = inp.X
        self.dtype = inp.output_dtype
        self.n_genes = inp.X.shape[1]
        self.scale: np.ndarray | None = None
        self._scipy = None  # X as a scipy matrix, made on the first block
        if not inp.is_log1p:
            self.scale = self._cell_scale()

    def _cell_scale(self) -> np.ndarray:
        """Per-cell divisor total/median in the output dtype, with 1 for empty cells."""
        X = self.X
        if is_sparse(X):
            totals64 = np.zeros(X.shape[0])
            # Rows in slices of about _TOTALS_CHUNK values: the float64 sums then never
            # need a float64 copy of the whole data array.
            for lo, hi in value_spans(X.indptr, _TOTALS_CHUNK):
                rows = np.arange(lo, hi)
                rows = rows[np.diff(X.indptr[lo : hi + 1]) > 0]
                if rows.size:
                    # reduceat cannot express an empty row; those keep their zero total.
                    data = X.data[X.indptr[lo] : X.indptr[hi]]
                    starts = X.indptr[rows] - X.indptr[lo]
                    totals64[rows] = np.add.reduceat(data, starts, dtype=np.float64)
            totals = totals64.astype(self.dtype)
            target = median(totals)
        else:
            totals = X.sum(axis=1, dtype=np.float64).astype(self.dtype)
            positive = totals[totals > 0]
            target = median(positive) if positive.size else self.dtype.type(1)
        if not target > 0:
            # Every cell is empty: there is nothing to scale (and no value to divide).
            target = self.dtype.type(1)
        scale = totals / target
        scale = scale + (scale == 0)
        return scale.astype(self.dtype, copy=False)

    def raw_csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The file as CSR arrays ``(data, indices, indptr)`` in the output dtype, not yet
        normalised. ``data`` is the input's own array where its dtype is already the
        output dtype (do not write to it); dense input is converted to CSR row slice by
        row slice."""
        X = self.X
        if not is_sparse(X):
            return _dense_to_csr(X, self.dtype)
        indptr = X.indptr
        return X.data[: indptr[-1]].astype(self.dtype, copy=False), X.indices, indptr

    def block(self, rows: np.ndarray) -> sp.csr_matrix:
        """Normalised expression of ``rows`` as CSR in the output dtype, zeros removed."""
        import scipy.sparse as sp  # the per-group path, for large files: scipy's row indexing

        X = self.X
        if is_sparse(X):
            if self._scipy is None:
                self._scipy = as_scipy(X)
            block = self._scipy[rows]
        else:
            # scipy.sparse has no float16, so dense rows are widened before conversion.
            block = sp.csr_matrix(X[rows].astype(self.dtype, copy=False))
        data = block.data.astype(self.dtype, copy=True)
        if self.scale is not None:
            _scale_log1p(data, self.scale[rows], block.indptr)
        block = sp.csr_matrix((data, block.indices, block.indptr), shape=block.shape)
        # Explicitly stored zeros are zeros: the rank test treats all zeros as one tie block.
        block.eliminate_zeros()
        return block


# Integer counts below this are normalised through a per-cell table of log1p(c / scale).
_TABLE_COUNTS = 64


def table_width(n_values: int, n_rows: int) -> int:
    """Counts per cell in the normalisation table: :data:`_TABLE_COUNTS`, or a smaller
    power of two where the rows hold fewer values, so that the table never has more
    entries than the data."""
    per_row = n_values // max(1, n_rows)
    if per_row >= _TABLE_COUNTS:
        return _TABLE_COUNTS
    return 1 << max(0, per_row.bit_length() - 1)


def log1p_table(scale: np.ndarray, width: int) -> np.ndarray:
    """``log1p(c / scale[r])`` for each row r and count c < width (rows x width), in the
    dtype of ``scale``."""
    table = np.arange(width, dtype=scale.dtype)[None, :] / scale[:, None]
    return np.log1p(table, out=table)


def divided_log1p(values: np.ndarray, scale_of_value: np.ndarray) -> np.ndarray:
    """``log1p(value / scale)``, value by value: the normalisation of one stored count."""
    out = values / scale_of_value
    return np.log1p(out, out=out)


def _scale_log1p(data: np.ndarray, scale: np.ndarray, indptr: np.ndarray) -> None:
    """``log1p(value / scale of its row)`` in place, for CSR rows with these ``indptr``
    offsets (relative or absolute) and one scale per row.

    Small integer counts, nearly every stored value of count data, are looked up in a
    table of ``log1p(c / scale)`` per cell (:func:`log1p_table`): the same float
    operations on the same operands (so the same bits), but one ``log1p`` per (cell,
    count) instead of one per stored value, which is most of the normalisation's time.
    Other values are computed directly.
    """
    lengths = np.diff(indptr)
    if data.size < 4 * _TABLE_COUNTS * scale.size:  # too few values for a table to pay
        data[:] = divided_log1p(data, np.repeat(scale, lengths))
        return
    if scale.size * _TABLE_COUNTS >= np.iinfo(np.int32).max:  # callers pass row slices
        raise ValueError("too many rows for one normalisation table")
    counts = data.astype(np.int32)  # truncates; exact below marks the true integers
    exact = counts == data
    exact &= counts < _TABLE_COUNTS
    table = log1p_table(scale, _TABLE_COUNTS)
    # Each value's row offset into the flattened table.
    row_start = np.repeat(np.arange(scale.size, dtype=np.int32) * _TABLE_COUNTS, lengths)
    rest = np.flatnonzero(~exact)
    rest_values = divided_log1p(data[rest], scale[row_start[rest] // _TABLE_COUNTS])
    # Inexact positions look up column 0 of their row and are overwritten below.
    np.multiply(counts, exact, out=counts)
    counts += row_start
    np.take(table.ravel(), counts, out=data)
    data[rest] = rest_values


def median(values: np.ndarray):
    """``np.median`` of a non-empty 1-D float array without NaN, by the same arithmetic
    (the middle value, or the two middle values added and halved in their dtype), without
    the import of ``numpy.ma`` that ``np.median`` makes: a cold-start cost."""
    half = values.size // 2
    if values.size % 2:
        return np.partition(values, half)[half]
    low, high = np.partition(values, [half - 1, half])[half - 1 : half + 1]
    return (low + high) / 2


def value_spans(offsets: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """Consecutive ranges [lo, hi) of positions holding about ``limit`` values each, where
    position i holds ``offsets[i]:offsets[i + 1]`` (a CSR indptr: rows),
    covering every position."""
    n = offsets.size - 1
    if n <= 0:
        return []
    targets = np.arange(limit, int(offsets[-1]), limit)
    cuts = np.searchsorted(offsets, targets, side="right") - 1
    bounds = np.concatenate([[0], cuts.clip(0, n), [n]])  # non-decreasing
    # Repeats dropped by hand: np.unique would import numpy.ma, a cold-start cost.
    bounds = bounds[np.concatenate([[True], bounds[1:] != bounds[:-1]])]
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))


def _dense_to_csr(X: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR arrays of a dense matrix in ``dtype``, as ``csr_matrix(X.astype(dtype))`` has."""
    rows_per_slice = max(1, _TOTALS_CHUNK // max(1, X.shape[1]))
    data, indices, counts = [], [], []
    for lo in range(0, X.shape[0], rows_per_slice):
        part = X[lo : lo + rows_per_slice].astype(dtype, copy=False)
        rows, cols = np.nonzero(part)
        data.append(part[rows, cols])
        indices.append(cols.astype(np.int32 if X.shape[1] < 2**31 else np.int64))
        counts.append(np.bincount(rows, minlength=part.shape[0]))
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)
    if not data:
        return np.empty(0, dtype), np.empty(0, np.int32), indptr
    return np.concatenate(data), np.concatenate(indices), indptr


def block_sums(block: sp.csr_matrix, n_genes: int) -> np.ndarray:
    """Per-gene float64 sum of a block's values."""
    return np.bincount(block.indices, weights=block.data, minlength=n_genes)


def group_means(sums: np.ndarray, sizes: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Pseudobulk means: float64 sums over the group size, rounded to the data dtype."""
    return (sums / np.asarray(sizes, dtype=np.float64)[:, None]).astype(dtype)
