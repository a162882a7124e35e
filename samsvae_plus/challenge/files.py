"""Read what the challenge scorer needs from an h5ad file with h5py alone.

``samsvae-plus score`` spends most of a cold start importing anndata and pandas, which the
scorer does not need: it uses the expression matrix, one ``obs`` column of labels and the
gene names. :func:`read_scorer_file` reads exactly those (X as CSR or dense, the column as
categories and codes or as strings, ``var``'s index) from files written by anndata 0.7 or
later. For anything else (an older layout, another column encoding, a file h5py cannot
open) it returns None, and the caller reads the file with anndata instead, so the result
and every error message stay those of the AnnData path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from samsvae_plus.challenge.csr_arrays import CSRArrays

if TYPE_CHECKING:
    import scipy.sparse as sp

# Encodings of the obs column that are read here; others fall back to anndata.
_STRING_ENCODINGS = ("string-array",)


@dataclass
class LabelColumn:
    """One ``obs`` column of labels, as stored.

    Attributes
    ----------
    raw
        What the cells hold: the categories of a categorical column, else the values
        (object array of ``str``).
    labels
        One label per cell (object array of ``str``; None where missing).
    n_missing
        Number of missing labels (code -1 of a categorical column).
    """

    raw: np.ndarray
    labels: np.ndarray
    n_missing: int


@dataclass
class ScorerFile:
    """The parts of an h5ad file the scorer reads (see :func:`read_scorer_file`).

    Attributes
    ----------
    path
        Where it was read from.
    X
        CSR arrays (:class:`~samsvae_plus.challenge.csr_arrays.CSRArrays`; scipy is not
        imported), a scipy CSC matrix (converted by the checks) or ndarray, cells x genes.
    var_names
        Gene names (``str``).
    obs_columns
        Names of the ``obs`` columns, in the file's order.
    columns
        The label columns read so far, by name.
    """

    path: Path
    X: CSRArrays | sp.csc_matrix | np.ndarray
    var_names: np.ndarray
    obs_columns: list[str]
    columns: dict[str, LabelColumn] = field(default_factory=dict)

    def obs_names(self) -> np.ndarray:
        """Cell names, read on demand (only error messages need them)."""
        import h5py

        with h5py.File(self.path, "r") as f:
            obs = f["obs"]
            return _strings(obs[_index_name(obs)])


class _Unsupported(Exception):
    """The file uses a layout this reader leaves to anndata."""


def read_scorer_file(path: str | os.PathLike, key: str) -> ScorerFile | None:
    """Read X, ``obs[key]`` and the gene names of an h5ad file, or None to use anndata.

    Parameters
    ----------
    path
        The h5ad file (an existing file; the caller reports missing ones).
    key
        The ``obs`` column of perturbation labels. A missing column is not an error here:
        the scorer's validation reports it.

    Returns
    -------
    ScorerFile or None
        None when the file is not in a layout read here (the caller falls back to
        ``anndata.read_h5ad``, which also produces the messages for unreadable files).
    """
    import h5py  # here, so that importing the scorer stays cheap

    try:
        with h5py.File(path, "r") as f:
            if _encoding(f) != "anndata" or "X" not in f:
                raise _Unsupported
            obs = f["obs"]
            if _encoding(obs) != "dataframe":
                raise _Unsupported
            columns = [str(c) for c in obs.attrs.get("column-order", [])]
            var = f["var"]
            if _encoding(var) != "dataframe":
                raise _Unsupported
            var_names = _strings(var[_index_name(var)])
            X = _matrix(f["X"])
            file = ScorerFile(Path(path), X, var_names, columns)
            if key in columns:
                file.columns[key] = _label_column(obs[key])
            return file
    except _Unsupported:
        return None
    except Exception:  # noqa: BLE001 - anndata reads it again and reports the problem
        return None


def _encoding(node) -> str:
    value = node.attrs.get("encoding-type", "")
    return value.decode() if isinstance(value, bytes) else str(value)


def _index_name(frame) -> str:
    name = frame.attrs.get("_index", "_index")
    return name.decode() if isinstance(name, bytes) else str(name)


def _strings(dataset) -> np.ndarray:
    """A string dataset as an object array of ``str``, exactly as stored (trailing NULs
    included, which a numpy ``str`` array would drop); anything else is left to anndata."""
    if _encoding(dataset) not in _STRING_ENCODINGS or dataset.dtype.kind not in "OS":
        raise _Unsupported
    return np.asarray(dataset.asstr()[()], dtype=object)


def _matrix(node) -> CSRArrays | sp.csc_matrix | np.ndarray:
    import h5py

    if isinstance(node, h5py.Dataset):
        if _encoding(node) not in ("array", "") or node.dtype.kind not in "biuf":
            raise _Unsupported
        return node[()]
    kind = _encoding(node)
    if kind not in ("csr_matrix", "csc_matrix"):
        raise _Unsupported
    shape = tuple(int(n) for n in node.attrs["shape"])
    parts = (node["data"][()], node["indices"][()], node["indptr"][()])
    if kind == "csr_matrix":
        try:
            return CSRArrays(*parts, shape=shape)
        except ValueError:  # malformed: anndata's reader gives the message
            raise _Unsupported from None
    import scipy.sparse as sp

    return sp.csc_matrix(parts, shape=shape)


def _label_column(node) -> LabelColumn:
    import h5py

    if isinstance(node, h5py.Group):
        if _encoding(node) != "categorical":
            raise _Unsupported
        categories = _strings(node["categories"])
        codes = node["codes"][()]
        if codes.dtype.kind not in "iu" or (codes >= categories.size).any():
            raise _Unsupported
        missing = codes < 0
        labels = np.empty(codes.size, dtype=object)
        labels[~missing] = categories[codes[~missing]]
        return LabelColumn(raw=categories, labels=labels, n_missing=int(missing.sum()))
    values = _strings(node)
    return LabelColumn(raw=values, labels=values, n_missing=0)
