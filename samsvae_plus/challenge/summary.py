"""One file's summary for the challenge scorer: pseudobulks and differential expression.

Every challenge metric is a function of two such summaries (real and prediction). A file
of moderate size is summarised in one compiled pass over all its values
(:mod:`~samsvae_plus.challenge.rank_stats`); a large one, or any file where the C
extension was not built, one perturbation group at a time with numpy, so that memory
stays near one group's. A baseline made of identical cells gets the same summary without
ever materialising its rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from samsvae_plus.challenge import rank_stats
from samsvae_plus.challenge.csr_arrays import is_sparse
from samsvae_plus.challenge.differential_expression import (
    ControlIndex,
    RankSums,
    ValueCodes,
    ValueRuns,
    benjamini_hochberg,
    block_runs,
    constant_runs,
    log2_fold_change,
    mann_whitney_pvalues,
    rank_sums,
)
from samsvae_plus.challenge.inputs import ScorerInput
from samsvae_plus.challenge.pseudobulk import Normalised, block_sums, group_cells, group_means

if TYPE_CHECKING:
    import scipy.sparse as sp

# Raw counts 0 .. COUNT_BUCKETS - 2 get a bucket each in the sort hint; larger ones share.
COUNT_BUCKETS = 16
# Files with more stored values are summarised one group at a time: the compiled pass
# lays the whole file out at once, while the per-group path's memory stays near one
# group's. The limit was measured for a numpy whole-file pass since removed
# (benchmarks/README.md, Scale); the compiled pass above it has not been measured.
JOINT_MAX_ENTRIES = 1 << 24


@dataclass(frozen=True)
class FileSummary:
    """Per-perturbation pseudobulks and DE results of one file against its own control.

    Attributes
    ----------
    labels
        Non-control perturbation labels, sorted.
    n_cells
        Cells per perturbation.
    means
        Pseudobulk of each perturbation (perturbations x genes), in the data dtype.
    control_mean
        Pseudobulk of the control cells.
    fdr
        Benjamini-Hochberg adjusted p-values within each perturbation, float32.
    lfc
        log2 fold changes against the control, float32.
    """

    labels: np.ndarray
    n_cells: np.ndarray
    means: np.ndarray
    control_mean: np.ndarray
    fdr: np.ndarray
    lfc: np.ndarray


def _summarise(
    labels: np.ndarray,
    n_cells: np.ndarray,
    groups: Iterator[tuple[np.ndarray, ValueRuns]],
    control_block: sp.csr_matrix,
    codes: ValueCodes,
    dtype: np.dtype,
) -> FileSummary:
    """Test each group (its float64 sums and its runs) against the control block."""
    n_genes = control_block.shape[1]
    control = ControlIndex(block_runs(control_block, codes), n_genes, codes.width)
    control_sums = block_sums(control_block, n_genes)
    sums = np.empty((len(labels), n_genes))
    pvalues = np.empty((len(labels), n_genes))
    for i, (group_sums, runs) in enumerate(groups):
        sums[i] = group_sums
        pvalues[i] = mann_whitney_pvalues(rank_sums(runs, control, n_genes))
    return _finish(
        labels=labels,
        n_cells=n_cells,
        sums=sums,
        control_sums=control_sums,
        n_control=control_block.shape[0],
        pvalues=pvalues,
        dtype=dtype,
    )


def _finish(
    labels: np.ndarray,
    n_cells: np.ndarray,
    sums: np.ndarray,
    control_sums: np.ndarray,
    n_control: int,
    pvalues: np.ndarray,
    dtype: np.dtype,
) -> FileSummary:
    """The summary from float64 sums (groups x genes) and p-values."""
    mean64 = sums / n_cells[:, None].astype(np.float64)
    control_mean64 = control_sums / float(n_control)
    return FileSummary(
        labels=labels,
        n_cells=n_cells,
        means=group_means(sums, n_cells, dtype),
        control_mean=group_means(control_sums[None, :], np.array([n_control]), dtype)[0],
        fdr=benjamini_hochberg(pvalues).astype(np.float32),
        lfc=log2_fold_change(mean64, control_mean64[None, :]),
    )


def summarise_file(inp: ScorerInput, control_label: str) -> FileSummary:
    """Summarise a validated file: normalise, pseudobulk and test every perturbation.

    Files of up to :data:`JOINT_MAX_ENTRIES` stored values test every group in one
    compiled pass over the whole file
    (:func:`~samsvae_plus.challenge.rank_stats.rank_stats`). Larger files, and every file
    where the extension was not built, are tested one group at a time with numpy
    (:func:`summarise_file_per_group`), whose memory stays near one group's. Both give
    the same numbers bit for bit.

    Parameters
    ----------
    inp
        The validated file.
    control_label
        Label of its control cells.

    Returns
    -------
    FileSummary
    """
    stored = inp.X.nnz if is_sparse(inp.X) else inp.X.size
    if stored > JOINT_MAX_ENTRIES or not rank_stats.available():
        return summarise_file_per_group(inp, control_label)
    norm = Normalised(inp)
    groups = group_cells(inp.labels)
    control = groups.index(control_label)
    others = np.array([i for i in range(groups.labels.size) if i != control], dtype=np.int64)
    # Group ids: the control is 0 (the kernel's control), then the others in label order.
    group_id = np.empty(groups.labels.size, dtype=np.int64)
    group_id[control] = 0
    group_id[others] = np.arange(1, others.size + 1)
    group_of_row = np.empty(inp.labels.size, dtype=np.int64)
    group_of_row[groups.order] = np.repeat(group_id, groups.sizes)
    sizes = np.concatenate([[groups.sizes[control]], groups.sizes[others]])
    # Counts: log1p(c / s) ascends as the size factor s falls, so cells by decreasing
    # size factor (then group) leave each (gene, raw count) bucket already sorted.
    row_order = None if norm.scale is None else np.lexsort((group_of_row, -norm.scale))
    stats = _compiled_stats(norm, group_of_row, sizes, row_order)
    pvalues = mann_whitney_pvalues(
        RankSums(
            u1=stats.u1,
            tie=stats.tie,
            nonzero=stats.nonzero,
            n1=sizes[1:, None],
            n2=int(sizes[0]),
        )
    )
    return _finish(
        labels=groups.labels[others],
        n_cells=groups.sizes[others],
        sums=stats.sums[1:],
        control_sums=stats.sums[0],
        n_control=int(sizes[0]),
        pvalues=pvalues,
        dtype=norm.dtype,
    )


def _compiled_stats(
    norm: Normalised, group_of_row: np.ndarray, sizes: np.ndarray, row_order: np.ndarray | None
) -> rank_stats.JointStats:
    """:func:`~samsvae_plus.challenge.rank_stats.rank_stats` of the file, counts being
    normalised as the kernel reads them (no normalised copy of the data)."""
    data, indices, indptr = norm.raw_csr()
    counts = None
    if norm.scale is not None:
        counts = rank_stats.count_source(data, indptr, norm.scale, COUNT_BUCKETS)
    return rank_stats.rank_stats(
        data, indices, indptr, group_of_row, sizes, norm.n_genes, row_order, counts
    )


def summarise_file_per_group(inp: ScorerInput, control_label: str) -> FileSummary:
    """:func:`summarise_file` one perturbation group at a time, with numpy.

    Each group's values are sorted and binary-searched into the control's
    (:mod:`~samsvae_plus.challenge.differential_expression`). This is the path for files
    above :data:`JOINT_MAX_ENTRIES` stored values and wherever the C extension was not
    built; it gives the compiled path's numbers bit for bit.

    Parameters
    ----------
    inp
        The validated file.
    control_label
        Label of its control cells.

    Returns
    -------
    FileSummary
    """
    norm = Normalised(inp)
    groups = group_cells(inp.labels)
    control = groups.index(control_label)
    others = [i for i in range(groups.labels.size) if i != control]
    if norm.dtype == np.float64:
        # float64 values are coded by rank in the file's vocabulary: one extra pass.
        vocabulary = (norm.block(groups.rows(i)).data for i in range(groups.labels.size))
        codes = ValueCodes(norm.dtype, vocabulary)
    else:
        codes = ValueCodes(norm.dtype)

    def each_group() -> Iterator[tuple[np.ndarray, ValueRuns]]:
        for i in others:
            block = norm.block(groups.rows(i))
            yield block_sums(block, norm.n_genes), block_runs(block, codes)

    return _summarise(
        labels=groups.labels[others],
        n_cells=groups.sizes[others],
        groups=each_group(),
        control_block=norm.block(groups.rows(control)),
        codes=codes,
        dtype=norm.dtype,
    )


def summarise_constant(
    values: np.ndarray,
    labels: np.ndarray,
    n_cells: np.ndarray,
    control_block: sp.csr_matrix,
) -> FileSummary:
    """Summarise a file whose every perturbation cell equals ``values``.

    This is the cell-mean baseline: ``n_cells[i]`` identical cells for ``labels[i]``, plus
    the given control cells (already normalised, zero-free CSR of the same dtype).
    """
    dtype = np.dtype(values.dtype)
    if dtype == np.float64:
        codes = ValueCodes(dtype, [control_block.data, values[values != 0]])
    else:
        codes = ValueCodes(dtype)
    values64 = values.astype(np.float64)

    def each_group() -> Iterator[tuple[np.ndarray, ValueRuns]]:
        for size in n_cells:
            yield values64 * float(size), constant_runs(values, int(size), codes)

    return _summarise(
        labels=np.asarray(labels),
        n_cells=np.asarray(n_cells),
        groups=each_group(),
        control_block=control_block,
        codes=codes,
        dtype=dtype,
    )
