"""A CSR matrix as torch tensors on a device, densified there row block by row block.

Counts and dosage stay sparse until they reach the device: a host-to-device copy of a
minibatch's CSR arrays moves a few percent of the bytes of its dense block, and the
data set of a training run, held as CSR on a GPU, often fits where its dense matrix would
not. The dense rows are built on the device by one gather and one scatter.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


class DeviceCSR:
    """Rows ``indptr``, column ``indices`` and ``values`` of a CSR matrix, on one device.

    Column indices are kept as ``int32`` (half the memory of ``int64``); row pointers as
    ``int64``, because a data set may hold more than 2**31 non-zeros.
    """

    def __init__(
        self, indptr: torch.Tensor, indices: torch.Tensor, values: torch.Tensor, n_cols: int
    ) -> None:
        self.indptr, self.indices, self.values, self.n_cols = indptr, indices, values, n_cols

    @classmethod
    def from_scipy(cls, matrix: sp.csr_matrix, device: torch.device | str) -> DeviceCSR:
        """Copy ``matrix`` to ``device``, with ``float32`` values."""
        matrix = sp.csr_matrix(matrix)
        if not matrix.has_canonical_format:
            # duplicate entries would overwrite each other in the scatter; scipy sums them
            matrix = matrix.copy()
            matrix.sum_duplicates()
        return cls(
            torch.from_numpy(matrix.indptr.astype(np.int64)).to(device),
            torch.from_numpy(matrix.indices.astype(np.int32)).to(device),
            torch.from_numpy(matrix.data.astype(np.float32, copy=False)).to(device),
            matrix.shape[1],
        )

    @property
    def n_rows(self) -> int:
        return self.indptr.shape[0] - 1

    @property
    def nbytes(self) -> int:
        return sum(t.element_size() * t.numel() for t in (self.indptr, self.indices, self.values))

    def dense(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Rows ``rows`` (a 1-d integer tensor on the same device; all rows by default) as a
        dense ``float32`` tensor, in the order given."""
        device = self.indptr.device
        if rows is None:
            rows = torch.arange(self.n_rows, device=device)
        starts = self.indptr[rows]
        lengths = self.indptr[rows + 1] - starts
        total = int(lengths.sum())  # the one host synchronisation: the gather's size
        out = torch.zeros(rows.shape[0], self.n_cols, dtype=self.values.dtype, device=device)
        if total == 0:
            return out
        # For entry e of the output, its row r(e) and its source position
        # starts[r] + (e - first entry of r in the output).
        out_rows = torch.repeat_interleave(
            torch.arange(rows.shape[0], device=device), lengths, output_size=total
        )
        first = torch.cumsum(lengths, 0) - lengths
        source = torch.arange(total, device=device) + (starts - first)[out_rows]
        out[out_rows, self.indices[source].long()] = self.values[source]
        return out


def to_host_csr(dense: torch.Tensor) -> sp.csr_matrix:
    """A dense ``float32`` tensor (sampled counts, mostly zeros) as a host CSR matrix.

    On a GPU it is made sparse there, so only the non-zeros cross to the host; either way
    the caller can drop the dense block at once, and memory grows with the non-zeros.
    """
    if dense.device.type == "cpu":
        return sp.csr_matrix(dense.numpy())
    sparse = dense.to_sparse_csr()
    return sp.csr_matrix(
        (
            sparse.values().cpu().numpy(),
            sparse.col_indices().cpu().numpy(),
            sparse.crow_indices().cpu().numpy(),
        ),
        shape=tuple(dense.shape),
    )


class GrowingCSR:
    """A CSR matrix built by appending row blocks, in memory about its own size.

    ``scipy.sparse.vstack`` holds every block and the result at once: twice the output.
    Here the value and column arrays grow in place (``ndarray.resize``, a ``realloc``, which
    for large arrays remaps pages instead of copying them), and each block can be dropped
    once appended, so the peak is the output plus one block.
    """

    def __init__(self, n_cols: int) -> None:
        self.n_cols = n_cols
        self.data = np.empty(0, dtype=np.float32)
        self.indices = np.empty(0, dtype=np.int32)
        self.row_lengths: list[np.ndarray] = []
        self.nnz = 0

    def _reserve(self, nnz: int) -> None:
        if nnz > self.data.shape[0]:
            # 5 % slack: growing a large array remaps its pages (no copy), so growing
            # often is cheap, while a doubling rule could leave the peak 2x the output
            capacity = max(nnz, int(1.05 * self.data.shape[0]))
            self.data.resize(capacity, refcheck=False)
            self.indices.resize(capacity, refcheck=False)

    def _put(self, data: np.ndarray, indices: np.ndarray, row_lengths: list[np.ndarray]) -> None:
        self._reserve(self.nnz + data.shape[0])
        self.data[self.nnz : self.nnz + data.shape[0]] = data
        self.indices[self.nnz : self.nnz + data.shape[0]] = indices
        self.nnz += data.shape[0]
        self.row_lengths.extend(row_lengths)

    def append(self, block: sp.csr_matrix) -> None:
        """Add the rows of ``block`` (a CSR matrix ``n_cols`` wide) below the others."""
        block = sp.csr_matrix(block)
        block.sum_duplicates()
        self._put(block.data, block.indices, [np.diff(block.indptr)])

    def extend(self, other: GrowingCSR) -> None:
        """Add the rows of ``other`` below these, and empty ``other``."""
        self._put(other.data[: other.nnz], other.indices[: other.nnz], other.row_lengths)
        other.__init__(other.n_cols)

    def to_csr(self) -> sp.csr_matrix:
        """The rows so far as a ``float32`` CSR matrix (sharing this builder's arrays)."""
        self.data.resize(self.nnz, refcheck=False)
        self.indices.resize(self.nnz, refcheck=False)
        lengths = np.concatenate(self.row_lengths) if self.row_lengths else np.empty(0, int)
        index_dtype = np.int32 if self.nnz <= np.iinfo(np.int32).max else np.int64
        indptr = np.zeros(lengths.shape[0] + 1, dtype=index_dtype)
        np.cumsum(lengths, out=indptr[1:])
        return sp.csr_matrix(
            (self.data, self.indices.astype(index_dtype, copy=False), indptr),
            shape=(lengths.shape[0], self.n_cols),
        )
