"""A CSR matrix as its three arrays, without scipy: what the scorer's fast path reads.

Importing ``scipy.sparse`` is about a third of a cold ``samsvae-plus score`` (it pulls in
``numpy.testing``, ``numpy.f2py`` and more), yet the compiled path only needs ``data``,
``indices`` and ``indptr``. So h5ad files read with h5py
(:func:`~samsvae_plus.challenge.files.read_scorer_file`) keep X as
:class:`CSRArrays`, and scipy is imported only where one of its operations is needed
(:meth:`CSRArrays.to_scipy`: the per-group path, conversions, rare checks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from samsvae_plus.data.validate import is_scipy_sparse


@dataclass(frozen=True)
class CSRArrays:
    """Cells x genes in compressed sparse row form, checked like scipy's constructor.

    Attributes
    ----------
    data, indices, indptr
        The CSR arrays (``indptr`` has one entry more than there are rows).
    shape
        (rows, columns).
    """

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple[int, int]

    format = "csr"
    ndim = 2

    def __post_init__(self) -> None:
        rows, columns = self.shape
        indptr = self.indptr
        if indptr.ndim != 1 or indptr.size != rows + 1 or (indptr.size and indptr[0] != 0):
            raise ValueError(f"indptr must have {rows + 1} entries starting at 0")
        nnz = int(indptr[-1]) if indptr.size else 0
        if np.any(np.diff(indptr) < 0):
            raise ValueError("indptr must not decrease")
        if self.indices.size < nnz or self.data.size < nnz:
            raise ValueError(f"indices and data must hold at least {nnz} entries")
        used = self.indices[:nnz]
        if nnz and (used.min() < 0 or used.max() >= columns):
            raise ValueError(f"column indices must lie in [0, {columns})")

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def nnz(self) -> int:
        """Stored values (explicit zeros included), as scipy counts them."""
        return int(self.indptr[-1])

    @property
    def size(self) -> int:
        """Stored values, as scipy's ``size`` of a sparse matrix."""
        return self.nnz

    def max(self):
        """The largest value, implicit zeros included (scipy's ``max``)."""
        stored = self.data[: self.nnz]
        full = self.nnz == self.shape[0] * self.shape[1]
        if not stored.size:
            return self.dtype.type(0)
        top = stored.max()
        return top if full else max(top, self.dtype.type(0))

    def copy(self) -> CSRArrays:
        return CSRArrays(self.data.copy(), self.indices.copy(), self.indptr.copy(), self.shape)

    def to_scipy(self):
        """The same matrix as a ``scipy.sparse.csr_matrix`` (sharing the arrays)."""
        import scipy.sparse as sp

        return sp.csr_matrix((self.data, self.indices, self.indptr), shape=self.shape)


def is_sparse(X) -> bool:
    """Whether ``X`` is :class:`CSRArrays` or a scipy sparse matrix or array."""
    return isinstance(X, CSRArrays) or is_scipy_sparse(X)


def as_scipy(X):
    """``X`` with :class:`CSRArrays` turned into a scipy CSR matrix (others unchanged)."""
    return X.to_scipy() if isinstance(X, CSRArrays) else X
