"""Checks on user input, shared by registration, encoding and the CLI.

Every check raises :class:`~samsvae_plus.errors.InputError` with one line that names the
field, the problem and the fix, and runs before any heavy work starts.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from samsvae_plus.errors import InputError

# Dense matrices are checked in row blocks so that a check never doubles peak memory.
_ROW_BLOCK = 4096


def _value_blocks(matrix) -> Iterable[np.ndarray]:
    """The stored values of a dense or sparse matrix, in memory-bounded blocks."""
    if sp.issparse(matrix):
        yield np.asarray(matrix.data)
        return
    matrix = np.asarray(matrix) if not hasattr(matrix, "shape") else matrix
    for start in range(0, matrix.shape[0], _ROW_BLOCK):
        yield np.asarray(matrix[start : start + _ROW_BLOCK])


def check_counts(matrix, where: str) -> None:
    """Require finite, non-negative, integer-valued counts of a usable dtype.

    Parameters
    ----------
    matrix
        A dense array or scipy sparse matrix of cells x genes.
    where
        How the user names this matrix (``"adata.X"``, ``"adata.layers['counts']"``),
        used in the message.
    """
    dtype = np.dtype(matrix.dtype)
    if dtype == np.float16:
        raise InputError(
            f"{where} is float16, which cannot hold counts above 2048 exactly; "
            f"convert it with {where} = {where}.astype('float32')"
        )
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise InputError(f"{where} has dtype {dtype}; store counts as an integer or float array")
    is_integer_dtype = np.issubdtype(dtype, np.integer)
    for values in _value_blocks(matrix):
        if values.size == 0:
            continue
        if not is_integer_dtype and not np.isfinite(values).all():
            raise InputError(
                f"{where} contains NaN or infinite values; remove or impute them before setup"
            )
        if values.min() < 0:
            raise InputError(
                f"{where} contains negative values; SAMS-VAE models raw UMI counts, "
                "so pass the unnormalised counts (for example a 'counts' layer)"
            )
        if not is_integer_dtype and (values != np.round(values)).any():
            raise InputError(
                f"{where} contains non-integer values, so it looks normalised; pass raw "
                "counts with layer='counts' (or whichever layer holds them)"
            )


def row_sums(matrix) -> np.ndarray:
    """Per-row totals of a dense or sparse matrix as float64."""
    return np.asarray(matrix.sum(axis=1), dtype=np.float64).ravel()


def check_no_empty_cells(totals: np.ndarray, cell_names: pd.Index) -> None:
    """Reject cells whose counts over the modelled genes sum to zero."""
    empty = np.flatnonzero(totals <= 0)
    if empty.size:
        raise InputError(
            f"{empty.size} cell(s) have zero counts over the modelled genes "
            f"(first: {cell_names[empty[0]]!r}); remove them with "
            "scanpy.pp.filter_cells(adata, min_counts=1)"
        )


def check_unique_names(names: pd.Index, what: str) -> None:
    """Require non-empty, unique names (gene or cell names)."""
    as_str = names.astype(str)
    if (as_str.str.strip() == "").any():
        raise InputError(f"some {what} names are empty; give every {what} a name")
    if not names.is_unique:
        dup = names[names.duplicated()][0]
        fix = "adata.var_names_make_unique()" if what == "gene" else "adata.obs_names_make_unique()"
        raise InputError(f"{what} names are not unique (e.g. {dup!r} repeats); call {fix}")


def check_obs_column(
    obs: pd.DataFrame, key: str, role: str, *, allow_unused: bool = False
) -> pd.Series:
    """Return ``obs[key]`` as strings after checking it exists and has no missing labels.

    Unused categorical levels are an error at registration, where they would become
    conditions without cells, and are ignored with ``allow_unused=True``.
    """
    if key not in obs.columns:
        shown = ", ".join(map(repr, list(obs.columns)[:8])) or "none"
        raise InputError(
            f"{role} key {key!r} is not a column of adata.obs (columns: {shown}); "
            f"pass the column that holds the {role} labels"
        )
    column = obs[key]
    if column.isna().any():
        raise InputError(
            f"adata.obs[{key!r}] has {int(column.isna().sum())} missing label(s); "
            "label or remove those cells"
        )
    labels = column.astype(str)
    if (labels.str.strip() == "").any():
        raise InputError(f"adata.obs[{key!r}] has empty labels; label or remove those cells")
    if not allow_unused and isinstance(column.dtype, pd.CategoricalDtype):
        unused = column.cat.categories.difference(pd.Index(column.unique()))
        if len(unused):
            raise InputError(
                f"adata.obs[{key!r}] has unused categories ({', '.join(map(str, unused[:5]))}); "
                f"drop them with adata.obs[{key!r}] = "
                f"adata.obs[{key!r}].cat.remove_unused_categories()"
            )
    return labels


def check_positive_finite(values: np.ndarray, where: str) -> None:
    """Require strictly positive, finite values (library sizes)."""
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).all() or (values <= 0).any():
        raise InputError(
            f"{where} must be positive and finite in every cell; fix or drop those cells"
        )
