"""Sparse two-sided Mann-Whitney U test of each group against the control, plus BH and lfc.

The test is the asymptotic one with average ranks for ties, the tie-corrected variance and
a 0.5 continuity correction, i.e. ``scipy.stats.mannwhitneyu(x, y, method="asymptotic",
use_continuity=True)`` for every gene. It never ranks the zeros one by one: all zeros of a
gene, in both groups, form one tie block whose size is known from the non-zero count.

Only the non-zero values are sorted. Each gene's values become integer keys
``gene << shift | code(value)``, where the code keeps order and equality, so that one
``np.sort`` orders every gene at once. A group is then reduced to *runs*: (gene, value,
how many cells have it). The control's runs are indexed once; for each run of a group, a
binary search gives how many control cells of that gene have a smaller and an equal value.
From those counts the U statistic and the tie term follow in closed form:

    U1  = z1 * z2 / 2 + sum over runs of a * (z2 + less + equal / 2)
    tie = (z^3 - z) + sum over control runs (b^3 - b) + sum over runs (a^3 - a + 3ab(a + b))

with ``z1, z2`` the zeros of the group and the control, ``z = z1 + z2``, ``a`` a run's
size and ``b`` the number of control cells with that value. ((a+b)^3 - (a+b) splits into
the three terms, so the control's own ties are summed once.) Every term is a multiple of
1/2 and exact in float64, so U and the tie term are exact and the p-value is computed
with the same operations as the reference implementation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from samsvae_plus.challenge import compiled

if TYPE_CHECKING:
    import scipy.sparse as sp


class ValueCodes:
    """Integer codes for positive values that keep their order and equality.

    float32 values are coded by their bit pattern (monotone for positive floats); float64
    values by their position in a sorted vocabulary of all values of the file.

    Parameters
    ----------
    dtype
        The dtype of the values.
    vocabulary
        For float64 only: every value that will be coded, in any order, with repeats.
    """

    def __init__(self, dtype: np.dtype, vocabulary: Iterable[np.ndarray] | None = None) -> None:
        self.dtype = np.dtype(dtype)
        if self.dtype == np.float32:
            self.vocabulary = None
            self.shift = 31
        elif self.dtype == np.float64:
            if vocabulary is None:
                raise ValueError("float64 values need a vocabulary")
            pieces = [np.asarray(v, dtype=np.float64) for v in vocabulary]
            self.vocabulary = np.unique(np.concatenate(pieces)) if pieces else np.empty(0)
            self.shift = max(1, int(self.vocabulary.size).bit_length())
        else:
            raise ValueError(f"unsupported dtype {self.dtype}")
        # Keys are gene << shift | code, so the gene comes back with a shift.
        self.width = 1 << self.shift

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Codes of ``values`` (positive, of this dtype) as int64."""
        if self.vocabulary is None:
            return np.ascontiguousarray(values, dtype=np.float32).view(np.uint32).astype(np.int64)
        return np.searchsorted(self.vocabulary, values).astype(np.int64)


@dataclass(frozen=True)
class ValueRuns:
    """A group's non-zero values as runs of equal values, sorted by (gene, value).

    Attributes
    ----------
    keys
        ``gene << shift | code``, ascending and unique.
    genes
        Gene of each run.
    counts
        Number of cells in each run (float64, so sums stay exact and fast).
    n_cells
        Number of cells in the group, zeros included.
    """

    keys: np.ndarray
    genes: np.ndarray
    counts: np.ndarray
    n_cells: int


def _runs_from_sorted_keys(keys: np.ndarray, shift: int, n_cells: int) -> ValueRuns:
    if not keys.size:
        # A group whose cells are zero in every gene has no runs: all its cells are zeros.
        return ValueRuns(keys, keys >> shift, np.empty(0), n_cells)
    if not (keys[1:] == keys[:-1]).any():
        # Continuous values rarely repeat within a gene: every value is its own run.
        return ValueRuns(keys, keys >> shift, np.ones(keys.size), n_cells)
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    counts = np.diff(np.append(starts, keys.size)).astype(np.float64)
    unique = keys[starts]
    return ValueRuns(unique, unique >> shift, counts, n_cells)


def block_runs(block: sp.csr_matrix, codes: ValueCodes) -> ValueRuns:
    """Runs of a CSR block (cells x genes) whose stored values are all positive."""
    keys = codes(block.data)
    keys |= block.indices.astype(np.int64) << codes.shift
    # In CSR order each cell's keys already ascend (genes ascend within a row), so the
    # stable sort, which merges presorted runs, is about twice as fast as quicksort here.
    keys.sort(kind="stable")
    return _runs_from_sorted_keys(keys, codes.shift, block.shape[0])


def constant_runs(values: np.ndarray, n_cells: int, codes: ValueCodes) -> ValueRuns:
    """Runs of ``n_cells`` identical cells that all equal ``values`` (one per gene)."""
    genes = np.flatnonzero(values).astype(np.int64)
    keys = (genes << codes.shift) | codes(values[genes])
    counts = np.full(genes.size, float(n_cells))
    return ValueRuns(keys, genes, counts, n_cells)


class ControlIndex:
    """The control group's runs, indexed for counting smaller and equal values per gene.

    Parameters
    ----------
    runs
        Runs of the control cells.
    n_genes
        Number of genes.
    width
        ``1 << shift`` of the codes: the key of a gene's first possible value.
    """

    def __init__(self, runs: ValueRuns, n_genes: int, width: int) -> None:
        self.runs = runs
        self.n_cells = runs.n_cells
        # A sentinel key above every real key lets a binary search land inside the arrays.
        self.keys = np.append(runs.keys, np.iinfo(np.int64).max)
        self.counts = np.append(runs.counts, 0.0)
        # cum[i] = control cells in runs before run i, so counts between two positions
        # of the key array are differences of cum.
        self.cum = np.concatenate([[0.0], np.cumsum(runs.counts)])
        gene_keys = np.arange(n_genes + 1, dtype=np.int64) * np.int64(width)
        # Control cells of each gene that come before the gene's first run.
        self.cum_gene_start = self.cum[np.searchsorted(runs.keys, gene_keys)[:-1]]
        self.nonzero = np.bincount(runs.genes, weights=runs.counts, minlength=n_genes)
        b = runs.counts
        self.tie = np.bincount(runs.genes, weights=b * b * b - b, minlength=n_genes)


@dataclass(frozen=True)
class RankSums:
    """What the test needs of one group against the control, per gene."""

    u1: np.ndarray
    tie: np.ndarray
    nonzero: np.ndarray
    n1: int | np.ndarray
    n2: int


def rank_sums(runs: ValueRuns, control: ControlIndex, n_genes: int) -> RankSums:
    """U statistic of the group and the tie term of the pooled sample, per gene."""
    n1, n2 = runs.n_cells, control.n_cells
    genes, a = runs.genes, runs.counts
    single = bool((a == 1.0).all())  # typical for continuous values: cheaper sums below
    position = np.searchsorted(control.keys, runs.keys)
    # Only runs whose value also occurs in the control, or that repeat within the group,
    # add to the tie term; they are few, so they are summed apart.
    tied = np.flatnonzero(control.keys[position] == runs.keys)
    equal = control.counts[position[tied]]
    if single:
        nonzero1 = np.bincount(genes, minlength=n_genes).astype(np.float64)
        below = np.bincount(genes, weights=control.cum[position], minlength=n_genes)
        a_tied = np.ones(tied.size)
        repeats = np.zeros(n_genes)
    else:
        nonzero1 = np.bincount(genes, weights=a, minlength=n_genes)
        below = np.bincount(genes, weights=a * control.cum[position], minlength=n_genes)
        a_tied = a[tied]
        multi = np.flatnonzero(a > 1.0)
        a_multi = a[multi]
        repeats = np.bincount(
            genes[multi], weights=a_multi * a_multi * a_multi - a_multi, minlength=n_genes
        )
    zeros1 = n1 - nonzero1
    zeros2 = n2 - control.nonzero
    # Per run, control cells below it = cum[position] - cum at the gene's start; the
    # per-gene parts are pulled out of the sum so each run costs one gather.
    u1 = (
        zeros1 * zeros2 * 0.5
        + (zeros2 - control.cum_gene_start) * nonzero1
        + below
        + np.bincount(genes[tied], weights=0.5 * a_tied * equal, minlength=n_genes)
    )
    zeros = zeros1 + zeros2
    shared = 3.0 * a_tied * equal * (a_tied + equal)
    tie = (
        (zeros * zeros * zeros - zeros)
        + control.tie
        + repeats
        + np.bincount(genes[tied], weights=shared, minlength=n_genes)
    )
    return RankSums(u1=u1, tie=tie, nonzero=nonzero1 + control.nonzero, n1=n1, n2=n2)


def erfc(x: np.ndarray) -> np.ndarray:
    """:func:`math.erfc` of every value (float64): compiled, without the GIL, where the
    extension is built (the same C library function, so the same bits)."""
    out = np.array(x, dtype=np.float64)  # a fresh, contiguous copy to overwrite
    if compiled.kernels is not None:
        compiled.kernels.erfc_inplace(out)
        return out
    tail = np.fromiter(map(math.erfc, out.ravel().tolist()), dtype=np.float64, count=out.size)
    return tail.reshape(out.shape)


def mann_whitney_pvalues(stats: RankSums) -> np.ndarray:
    """Two-sided asymptotic p-values with tie and continuity corrections, per gene.

    The arithmetic follows the reference implementation operation for operation
    (including ``erfc`` from the C library, through :func:`math.erfc`), so p-values agree
    to the last bit and FDR thresholds cannot flip.
    """
    # n1 may be one size per row of 2-D statistics (all groups of a file at once).
    n1, n2 = np.asarray(stats.n1, dtype=np.float64), np.asarray(stats.n2, dtype=np.float64)
    n = n1 + n2
    u1 = stats.u1
    u = np.maximum(u1, n1 * n2 - u1)
    mu = np.broadcast_to(n1 * n2 / 2.0, u1.shape)
    var_inner = (n + 1.0) - stats.tie / (n * (n - 1.0))
    s_sq = n1 * n2 / 12.0 * var_inner
    p = np.ones_like(u1)
    tested = (s_sq > 0.0) & (stats.nonzero > 0)
    if tested.any():
        z = (u[tested] - mu[tested] - 0.5) / np.sqrt(s_sq[tested])
        p[tested] = 0.5 * erfc(z / math.sqrt(2.0)) * 2.0
    return np.clip(p, 0.0, 1.0)


def benjamini_hochberg(pvalues: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values along the last axis.

    Same arithmetic as ``scipy.stats.false_discovery_control(p, axis=-1)``, without
    importing ``scipy.stats`` (which alone costs about a second at start-up).
    """
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.shape[-1]
    if m <= 1:
        return p.copy()
    order = np.argsort(p, axis=-1)
    ranked = np.take_along_axis(p, order, axis=-1)
    ranked *= m / np.arange(1, m + 1, dtype=np.float64)
    ranked = np.minimum.accumulate(ranked[..., ::-1], axis=-1)[..., ::-1]
    adjusted = np.empty_like(ranked)
    np.put_along_axis(adjusted, order, ranked, axis=-1)
    return np.clip(adjusted, 0.0, 1.0)


def log2_fold_change(mean_group: np.ndarray, mean_control: np.ndarray) -> np.ndarray:
    """log2(expm1(mean_group) / expm1(mean_control)) without pseudocount, as float32.

    Means are of log1p values. 0/0 is 0 (a gene silent in both), and a one-sided zero
    gives +-inf, as in the reference.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        lfc = np.log2(np.expm1(mean_group) / np.expm1(mean_control))
    lfc[np.isnan(lfc)] = 0.0
    return lfc.astype(np.float32)
