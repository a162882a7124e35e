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


def stack_csr(blocks: list[sp.csr_matrix]) -> sp.csr_matrix:
    """Stack CSR row blocks of equal width into one ``float32`` CSR matrix, emptying
    ``blocks`` as it goes: each block is released once copied, so the peak is the result
    plus one block, where ``scipy.sparse.vstack`` holds every block and the result."""
    n_cols = blocks[0].shape[1] if blocks else 0
    nnz = sum(block.nnz for block in blocks)
    n_rows = sum(block.shape[0] for block in blocks)
    index_dtype = np.int64 if max(nnz, n_cols) > np.iinfo(np.int32).max else np.int32
    data = np.empty(nnz, dtype=np.float32)
    indices = np.empty(nnz, dtype=index_dtype)
    indptr = np.zeros(n_rows + 1, dtype=index_dtype)
    row = entry = 0
    blocks.reverse()  # pop from the end, in the original order
    while blocks:
        block = blocks.pop()
        block.sum_duplicates()
        rows, size = block.shape[0], block.nnz
        data[entry : entry + size] = block.data
        indices[entry : entry + size] = block.indices
        indptr[row + 1 : row + rows + 1] = block.indptr[1:] + entry
        row, entry = row + rows, entry + size
    return sp.csr_matrix((data, indices, indptr), shape=(n_rows, n_cols))
