"""Every group of a file against its control with one sort: the one-sort rank sums.

:mod:`~samsvae_plus.challenge.differential_expression` tests one group at a time: it sorts
the group's keys and binary-searches them into the control's. Here every non-zero value
of the file becomes one key ``gene << (c + g) | code(value) << g | group``, with the
control as group 0, and one sort orders the whole file by (gene, value, group). In that
order a group's value is preceded, within its gene, by exactly the control values that
are smaller or equal (the control sorts first among equal values), so with ``C`` the
running count of control values, per element

    less + equal = C[p] - C(gene start)

and the U statistic, the run sizes and the tie terms follow from linear passes (cumsum,
diff, bincount over ``gene * n_groups + group``) instead of a binary search per value:

    U1  = z1 z2 / 2 + nnz1 (z2 - C(gene start)) + sum_p C[p] - sum over runs a b / 2
    tie = (z^3 - z) + sum over control runs (b^3 - b) + sum over runs (a^3 - a)
          + sum over runs 3 a b (a + b)

with the notation of :mod:`~samsvae_plus.challenge.differential_expression` (``a`` a run
of equal values in the group, ``b`` the control cells with that value). Every term is a
multiple of 1/2 and exact in float64, so U1 and the tie term are the numbers the
per-group path computes, and the p-values are bit for bit the same.

How it runs: the keys of a block of genes (the whole file, up to :data:`BLOCK_ENTRIES`
stored values) are laid out gene by gene with a linear counting sort (scipy's C++ CSR
kernels; see :class:`SortHint` for how count data come out nearly sorted), then sorted
and reduced in contiguous chunks of about :data:`CHUNK_ENTRIES` values, so the chunk
temporaries stay small. The pseudobulk sums are accumulated in the file's row order, as
the per-group path does, so they agree to the last bit too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from samsvae_plus.challenge.differential_expression import ValueCodes
from samsvae_plus.challenge.pseudobulk import value_spans

# Stored values sorted and reduced at once: a contiguous slice of genes after the values
# are laid out gene by gene. Its int64 temporaries (2 MB) stay in cache and well below
# glibc's mmap threshold, so they are reused from chunk to chunk instead of being fresh
# kernel memory each time.
CHUNK_ENTRIES = 1 << 18
# Stored values laid out gene by gene at once (bounds the int64 copies of large files).
BLOCK_ENTRIES = 1 << 24
# Bits a key may use: int64 keys must stay non-negative.
KEY_BITS = 63


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


def fits(codes: ValueCodes, n_groups: int) -> bool:
    """Whether keys of one gene, ``codes`` and ``n_groups`` groups fit in int64 (blocks
    hold as many genes as the remaining bits allow)."""
    return _group_bits(n_groups) + codes.shift + 1 <= KEY_BITS


def _group_bits(n_groups: int) -> int:
    return max(1, int(n_groups - 1).bit_length())


def _gene_chunks(indices: np.ndarray, n_genes: int, max_genes: int, limit: int) -> list:
    """Gene ranges [lo, hi) of at most ``max_genes`` genes and about ``limit`` stored
    values (at most ``limit`` plus one gene's)."""
    if indices.size <= limit and n_genes <= max_genes:
        return [(0, n_genes)]
    starts = np.concatenate([[0], np.cumsum(np.bincount(indices, minlength=n_genes))])
    return [
        (lo, min(lo + max_genes, hi))
        for start, hi in value_spans(starts, limit)
        for lo in range(start, hi, max_genes)
    ]


@dataclass(frozen=True)
class SortHint:
    """A visiting order that leaves the keys nearly sorted, so that the sort is cheap.

    Entries are first placed by a counting sort on ``gene * n_buckets + bucket``
    (stable, visiting the cells in ``row_order``); when values ascend within each
    (gene, bucket) in that order, the sort that follows only merges a few runs per
    gene. The hint changes the speed only: the sort still orders the true keys.

    For counts normalised by cell: bucket = the raw count (clipped), cells by
    decreasing size factor (then group), since ``log1p(c / s)`` falls as ``s`` grows.
    """

    row_order: np.ndarray
    buckets: np.ndarray
    n_buckets: int


def joint_stats(
    data: np.ndarray,
    indices: np.ndarray,
    indptr: np.ndarray,
    group_of_row: np.ndarray,
    sizes: np.ndarray,
    n_genes: int,
    codes: ValueCodes,
    hint: SortHint | None = None,
    chunk_entries: int | None = None,
) -> JointStats:
    """Pseudobulk sums and rank sums of every group against group 0, the control.

    Parameters
    ----------
    data, indices, indptr
        The normalised file as CSR arrays (cells x genes); stored zeros are ignored.
    group_of_row
        Group of each cell, 0 for the control.
    sizes
        Cells per group (group 0 first).
    n_genes
        Number of genes.
    codes
        Order-keeping integer codes of the values (see :func:`fits`).
    hint
        Optional :class:`SortHint` (one bucket per stored value).
    chunk_entries
        Most stored values sorted at once (default :data:`CHUNK_ENTRIES`).
    """
    chunk_entries = CHUNK_ENTRIES if chunk_entries is None else chunk_entries
    n_groups = int(sizes.size)
    gbits = _group_bits(n_groups)
    vshift = codes.shift + gbits
    if not fits(codes, n_groups):
        raise ValueError("keys do not fit in int64: use the per-group path")
    max_genes = 1 << (KEY_BITS - vshift)
    group_dtype = np.int16 if n_groups <= np.iinfo(np.int16).max else np.int32
    group_of_entry = np.repeat(group_of_row.astype(group_dtype), np.diff(indptr))
    zeros = bool((data == 0).any())
    blocks = _gene_chunks(indices, n_genes, max_genes, max(BLOCK_ENTRIES, chunk_entries))
    buckets = None if hint is None else hint.buckets
    n_buckets = 1 if hint is None else hint.n_buckets
    row_order = None if hint is None else hint.row_order

    n_tests = n_groups - 1
    sums = np.empty((n_groups, n_genes))
    u1 = np.empty((n_tests, n_genes))
    tie = np.empty((n_tests, n_genes))
    nonzero = np.empty((n_tests, n_genes))
    n1 = sizes[1:].astype(np.float64)
    n2 = float(sizes[0])
    for lo, hi, part in _each_chunk(blocks, zeros, data, indices, indptr, group_of_entry, buckets):
        n_block = hi - lo
        # Two int64 work arrays serve every whole-block step in turn: large arrays are
        # fresh memory from the kernel each time they are allocated.
        work = np.empty(part[0].size, dtype=np.int64)
        spare = np.empty_like(work)
        sums[:, lo:hi] = _group_sums(part, lo, n_block, n_groups, work, spare.view(np.float64))
        keys, starts = _keys_by_column(
            part, lo, n_block, codes, gbits, row_order, n_buckets, work, spare
        )
        del part, work, spare
        gene_starts = starts[::n_buckets]
        for first, last in value_spans(gene_starts, chunk_entries):
            chunk = keys[gene_starts[first] : gene_starts[last]]
            # Within a bucket the values already ascend: the stable sort merges runs.
            chunk.sort(kind="stable")
            genes_in_chunk = slice(lo + first, lo + last)
            stats = _chunk_stats(chunk, first, last - first, n_groups, vshift, gbits, n1, n2)
            u1[:, genes_in_chunk], tie[:, genes_in_chunk], nonzero[:, genes_in_chunk] = stats
        del keys
    return JointStats(sums=sums, u1=u1, tie=tie, nonzero=nonzero)


def _each_chunk(chunks, zeros, data, indices, indptr, groups, buckets):
    """Per gene range: lo, hi and its non-zero values (genes, values, groups, buckets,
    indptr), in the file's order.

    Each stored value is labelled with its range once (zeros with none); a range's
    values are then gathered by position, so cutting out every range costs one pass
    over the file per range (a byte comparison) plus one over the range's own values."""
    if len(chunks) == 1 and not zeros:
        lo, hi = chunks[0]
        yield lo, hi, (indices, data, groups, buckets, indptr)
        return
    label_type = np.uint8 if len(chunks) < np.iinfo(np.uint8).max else np.int32
    widths = [hi - lo for lo, hi in chunks]
    range_of_value = np.repeat(np.arange(len(chunks), dtype=label_type), widths)[indices]
    if zeros:
        range_of_value[data == 0] = len(chunks)  # a label no range has
    for label, (lo, hi) in enumerate(chunks):
        kept = np.flatnonzero(range_of_value == label)
        # Positions ascend, so each row's kept values start where its first position lands.
        chunk_indptr = np.searchsorted(kept, indptr)
        chunk_buckets = None if buckets is None else buckets[kept]
        yield lo, hi, (indices[kept], data[kept], groups[kept], chunk_buckets, chunk_indptr)


def _group_sums(part, lo, n_block, n_groups, bins, weights) -> np.ndarray:
    """float64 sums per (group, gene), accumulated in the order of the stored values.

    ``bins`` (int64) and ``weights`` (float64) are work arrays of the block's length.
    """
    genes, values, groups = part[:3]
    np.copyto(bins, groups)
    bins *= n_block
    bins += genes
    if lo:
        bins -= lo
    np.copyto(weights, values)  # exact: what bincount would convert them to
    sums = np.bincount(bins, weights=weights, minlength=n_groups * n_block)
    return sums.reshape(n_groups, n_block)


def _keys_by_column(
    part, lo, n_block, codes, gbits, row_order, n_buckets, keys, spare, private=True
):
    """The block's keys laid out by column ``gene * n_buckets + bucket`` (a stable
    counting sort), visiting the cells in ``row_order`` (None: as they are); and each
    column's start offset.

    scipy's C++ CSR kernels do both in linear time: row indexing, then the CSR-to-CSC
    conversion of the result seen as one row. ``keys`` and ``spare`` are int64 work
    arrays of the block's length; the result is one of them.
    """
    genes, values, groups, buckets, indptr = part
    n = genes.size
    n_columns = n_block * n_buckets
    index = np.int32 if max(n_columns, n) < np.iinfo(np.int32).max else np.int64
    np.copyto(keys, genes)
    if lo:
        keys -= lo
    columns = keys.astype(index)
    if n_buckets > 1:
        columns *= n_buckets
        columns += buckets
    keys <<= codes.shift
    if codes.vocabulary is None:
        # float32 codes are the bit patterns: OR them in without an int64 copy.
        keys |= np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    else:
        keys |= codes(values)
    keys <<= gbits
    keys |= groups
    tools = _kernels() if private else None
    if tools is None:  # the public, slower route
        import scipy.sparse as sp

        if row_order is not None:
            shape = (indptr.size - 1, n_columns)
            rows = sp.csr_matrix((keys, columns, indptr), shape=shape)[row_order]
            keys, columns = rows.data, rows.indices
        one_row = sp.csr_matrix((keys, columns, [0, n]), shape=(1, n_columns))
        by_column = one_row.tocsc()
        return by_column.data, by_column.indptr.astype(np.int64)
    try:
        return _by_column_private(tools, keys, columns, indptr, row_order, spare, n, n_columns)
    except TypeError:
        # A scipy whose private kernels changed their signature: the arguments are
        # checked before anything is written, and the keys are rebuilt from ``part``.
        return _keys_by_column(
            part, lo, n_block, codes, gbits, row_order, n_buckets, keys, spare, private=False
        )


def _by_column_private(tools, keys, columns, indptr, row_order, spare, n, n_columns):
    """:func:`_keys_by_column`'s layout through scipy's C++ kernels, in place."""
    index = columns.dtype
    if row_order is not None:
        row_columns = np.empty(n, dtype=index)
        row_keys = spare
        tools.csr_row_index(
            row_order.size,
            row_order.astype(index),
            indptr.astype(index, copy=False),
            columns,
            keys,
            row_columns,
            row_keys,
        )
        # keys and columns are free now: they receive the output (and the unused rows).
        out, unused = keys, columns
        keys, columns = row_keys, row_columns
        del row_keys, row_columns
    else:
        out, unused = spare, np.empty(n, dtype=index)
    starts = np.empty(n_columns + 1, dtype=index)
    tools.csr_tocsc(1, n_columns, np.array([0, n], dtype=index), columns, keys, starts, unused, out)
    return out, starts.astype(np.int64)


def _kernels():
    """scipy's private CSR kernels module, or None where it has moved."""
    try:
        from scipy.sparse import _sparsetools
    except ImportError:  # pragma: no cover - present in every scipy this supports
        return None
    return _sparsetools


def _chunk_stats(keys, first, n_chunk, n_groups, vshift, gbits, n1, n2):
    """U1, tie term and pooled non-zeros (tests x genes) from sorted keys of the genes
    ``first .. first + n_chunk`` (of the block)."""
    group_s = keys & ((1 << gbits) - 1)
    # Control values at or before each position (the same as before it, for a group's
    # value): cumsum of 0/1 as int64, which is several times faster than over booleans.
    below = (group_s == 0).astype(np.int64)
    np.cumsum(below, out=below)
    bins = keys >> vshift
    if first:
        bins -= first
    bins *= n_groups
    bins += group_s
    del group_s
    size = n_chunk * n_groups
    counts = np.bincount(bins, minlength=size).reshape(n_chunk, n_groups).astype(np.float64)
    below_sum = np.bincount(bins, weights=below, minlength=size).reshape(n_chunk, n_groups)
    del bins, below
    half_ab, repeats, shared, control_tie = _tie_terms(
        keys, first, n_chunk, n_groups, gbits, vshift
    )

    nonzero2 = counts[:, 0]
    control_before = np.concatenate([[0.0], np.cumsum(nonzero2)[:-1]])
    # tests x genes from here on, as the per-group path lays them out.
    nonzero1 = counts[:, 1:].T
    zeros1 = n1[:, None] - nonzero1
    zeros2 = n2 - nonzero2
    u1 = (
        zeros1 * zeros2 * 0.5
        + (zeros2 - control_before) * nonzero1
        + below_sum[:, 1:].T
        - half_ab[:, 1:].T
    )
    zeros = zeros1 + zeros2
    tie = (zeros * zeros * zeros - zeros) + control_tie + repeats[:, 1:].T + shared[:, 1:].T
    return u1, tie, nonzero1 + nonzero2


def _tie_terms(keys, first, n_chunk, n_groups, gbits, vshift):
    """Per (gene, group): sum a b / 2, sum (a^3 - a), sum 3 a b (a + b); control's ties.

    Only values that occur more than once in a gene (in any group) add anything, and
    they are few for continuous data, so they are picked out first.
    """
    size = n_chunk * n_groups
    value_keys = keys >> gbits
    same = value_keys[1:] == value_keys[:-1]
    del value_keys
    if not same.any():
        zero = np.zeros((n_chunk, n_groups))
        return zero, zero, zero, np.zeros(n_chunk)
    tied = np.zeros(keys.size, dtype=bool)
    tied[1:] = same
    tied[:-1] |= same
    del same
    sub = keys[tied]
    del tied
    starts = np.flatnonzero(np.concatenate([[True], sub[1:] != sub[:-1]]))
    a = np.diff(np.append(starts, sub.size)).astype(np.float64)
    run_keys = sub[starts]
    run_group = run_keys & ((1 << gbits) - 1)
    run_values = run_keys >> gbits
    new_value = np.concatenate([[True], run_values[1:] != run_values[:-1]])
    block = np.cumsum(new_value) - 1
    heads = np.flatnonzero(new_value)
    # b: control cells with the run's value (the block's first run, when it is control's).
    head_b = np.where(run_group[heads] == 0, a[heads], 0.0)
    b = head_b[block]
    bins = ((run_keys >> vshift) - first) * n_groups + run_group
    is_group = run_group != 0
    b = np.where(is_group, b, 0.0)
    half_ab = np.bincount(bins, weights=0.5 * a * b, minlength=size)
    cubes = a * a * a - a
    repeats = np.bincount(bins, weights=cubes, minlength=size).reshape(n_chunk, n_groups)
    shared = np.bincount(bins, weights=3.0 * a * b * (a + b), minlength=size)
    # The control's own runs: column 0 of repeats.
    control_tie = repeats[:, 0].copy()
    return (
        half_ab.reshape(n_chunk, n_groups),
        repeats,
        shared.reshape(n_chunk, n_groups),
        control_tie,
    )
