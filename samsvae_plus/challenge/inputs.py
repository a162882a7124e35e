"""Validation of the (prediction, real) pair for the Virtual Cell Challenge scorer.

Everything a user can get wrong is checked here, before any scoring work, and reported
as a one-line :class:`~samsvae_plus.errors.InputError` that names the problem and the fix.
The result of a check is a :class:`ScorerInput`: the expression matrix in a form the
scorer can stream over (CSR or dense, never copied here), one string label per cell, and
whether the values are raw counts or already log1p.

An input is an AnnData or a :class:`~samsvae_plus.challenge.files.ScorerFile` (the
parts of an h5ad file read without anndata); both go through the same checks in the same
order, with the same messages. Nothing here imports pandas or anndata.
"""

from __future__ import annotations

from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from samsvae_plus.challenge import compiled
from samsvae_plus.challenge.csr_arrays import CSRArrays, as_scipy, is_sparse
from samsvae_plus.challenge.files import LabelColumn, ScorerFile
from samsvae_plus.data import validate
from samsvae_plus.errors import InputError

if TYPE_CHECKING:
    import scipy.sparse as sp

# cell-eval's rule: a value with a fractional part above this is "not a count".
FRACTION_TOLERANCE = 1e-3
# log1p of any realistic normalised expression stays below this; larger floats mean the
# file mixes scales or holds unlogged normalised values.
LOG1P_MAX = 15.0
# Values scanned per step, so that validation never allocates a full-size temporary.
_CHUNK = 1 << 22


@dataclass(frozen=True)
class ScorerInput:
    """One validated expression file.

    Attributes
    ----------
    name
        How messages refer to the file (``"pred"``, ``"real"``, ...).
    X
        CSR matrix or 2-D ndarray, cells x genes, as given (float16 is widened later).
    labels
        One perturbation label per cell, as strings.
    genes
        Gene names (``str`` array), in column order.
    is_log1p
        True when the values are taken as log1p already; False for raw counts.
    """

    name: str
    X: CSRArrays | sp.csr_matrix | np.ndarray
    labels: np.ndarray
    genes: np.ndarray
    is_log1p: bool

    @property
    def output_dtype(self) -> np.dtype:
        """The dtype of the normalised matrix Y: float64 stays, everything else is float32."""
        dtype = self.X.dtype
        return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def as_matrix(adata, name: str) -> CSRArrays | sp.csr_matrix | np.ndarray:
    """Return ``adata.X`` as CSR or ndarray, rejecting what cannot be expression values."""
    X = getattr(adata, "X", None)
    if X is None:
        raise InputError(f"{name}.X is empty: store the expression matrix in {name}.X")
    if isinstance(X, CSRArrays):
        pass
    elif validate.is_scipy_sparse(X):
        import scipy.sparse as sp

        # CSC and COO are converted once; CSR (matrix or array) is used as it is.
        X = X if X.format == "csr" else X.tocsr()
        if not isinstance(X, sp.csr_matrix):
            X = sp.csr_matrix(X)
    elif isinstance(X, np.ndarray):
        X = np.asarray(X)
    else:
        raise InputError(
            f"{name}.X has unsupported type {type(X).__name__}: load it into memory as a "
            "numpy array or scipy CSR matrix (e.g. read the h5ad without backed mode)"
        )
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise InputError(
            f"{name}.X has dtype {X.dtype}: expression values must be numeric "
            "(raw counts or log1p floats)"
        )
    return X


def _values_in_chunks(X: CSRArrays | sp.csr_matrix | np.ndarray):
    """Yield the stored values of ``X`` in bounded pieces."""
    if is_sparse(X):
        data = X.data
        for start in range(0, data.size, _CHUNK):
            yield data[start : start + _CHUNK]
    else:
        rows = max(1, _CHUNK // max(1, X.shape[1]))
        for start in range(0, X.shape[0], rows):
            yield X[start : start + rows]


def _compiled_scan(chunk: np.ndarray) -> tuple[bool, float, float, bool] | None:
    """``(all finite, min, max, any fraction above the tolerance)`` of a float32 or
    float64 chunk in one compiled pass (None where the extension or the dtype does not
    serve). The fraction test is numpy's ``x - floor(x) > tol`` in the chunk's dtype."""
    if compiled.kernels is None or chunk.dtype not in (np.float32, np.float64):
        return None
    return compiled.kernels.scan_values(np.ascontiguousarray(chunk), FRACTION_TOLERANCE)


def detect_log1p(X: CSRArrays | sp.csr_matrix | np.ndarray, name: str) -> bool:
    """Check the values of ``X`` and say whether they are log1p (True) or counts (False).

    A matrix with no value whose fractional part exceeds 1e-3 is counts; anything else is
    taken as log1p and must lie in [0, 15). Explicitly stored zeros are ordinary zeros.

    Parameters
    ----------
    X
        CSR matrix or ndarray.
    name
        Name of the file, for messages.

    Returns
    -------
    bool
        True for log1p input, False for counts.

    Raises
    ------
    InputError
        On NaN or infinite values, negative values, or fractional values >= 15.
    """
    is_float = np.issubdtype(X.dtype, np.floating)
    has_fraction = False
    lowest, highest = np.inf, -np.inf
    for chunk in _values_in_chunks(X):
        if chunk.size == 0:
            continue
        scanned = _compiled_scan(chunk)
        if scanned is not None:
            finite, low, high, fraction = scanned
        else:
            low, high = chunk.min(), chunk.max()
            # NaN propagates through min and max, so finite extremes mean finite values.
            finite = not is_float or bool(np.isfinite(low) and np.isfinite(high))
            fraction = None  # computed below, only while no fraction has been seen
        if not finite:
            bad = "NaN" if np.isnan(chunk).any() else "infinite"
            raise InputError(
                f"{name}.X contains {bad} values: replace them (e.g. with 0) before scoring"
            )
        lowest = min(lowest, float(low))
        highest = max(highest, float(high))
        if is_float and not has_fraction:
            if fraction is None:
                fraction = np.floor(chunk)
                np.subtract(chunk, fraction, out=fraction)
                fraction = bool((fraction > FRACTION_TOLERANCE).any())
            has_fraction = fraction
    if lowest < 0:
        raise InputError(
            f"{name}.X contains negative values (min {lowest:.4g}): expression must be raw "
            "counts or log1p values, both >= 0"
        )
    if not has_fraction:
        validate.check_count_range(highest, f"{name}.X")
        return False
    if highest >= LOG1P_MAX:
        raise InputError(
            f"{name}.X holds non-integer values up to {highest:.4g}, which are neither counts "
            f"nor log1p (log1p values stay below {LOG1P_MAX:g}): pass raw counts or "
            "log1p-normalised values"
        )
    return True


def read_labels(adata, key: str, name: str) -> np.ndarray:
    """Return the perturbation label of every cell as strings; unused categories vanish.

    ``adata`` is an AnnData or a :class:`ScorerFile`; both are checked alike.

    Raises
    ------
    InputError
        When the column is missing or a label is missing or empty.
    """
    if isinstance(adata, ScorerFile):
        return _checked_labels(adata.columns.get(key), adata.obs_columns, key, name)
    obs = getattr(adata, "obs", None)
    column = None
    if obs is not None and key in obs.columns:
        values = obs[key]
        column = LabelColumn(
            raw=validate.raw_labels(values),
            labels=np.asarray(values.astype(str), dtype=object),
            n_missing=int(values.isna().sum()),
        )
    return _checked_labels(column, [] if obs is None else list(obs.columns), key, name)


def _checked_labels(column: LabelColumn | None, columns: list, key: str, name: str) -> np.ndarray:
    """The labels of ``column`` (None: not in the file) as strings, after the checks."""
    if column is None:
        raise InputError(
            f"{name}.obs has no column {key!r} (columns: {columns[:8]}): pass "
            "perturbation_key= / --perturbation-key naming the perturbation column"
        )
    if column.n_missing:
        raise InputError(
            f"{name}.obs[{key!r}] has {column.n_missing} missing labels: "
            "label every cell (controls too)"
        )
    validate.check_label_text(column.raw, f"{name}.obs[{key!r}]")
    labels = column.labels.astype(str)
    if (labels == "").any():
        raise InputError(
            f"{name}.obs[{key!r}] has {int((labels == '').sum())} empty labels: "
            "label every cell (controls too)"
        )
    return labels


def check_totals(X: CSRArrays | sp.csr_matrix | np.ndarray, cells, name: str) -> None:
    """Reject count input whose per-cell totals overflow int32, as registration does.

    The totals are summed only when the largest count times the number of genes could
    reach the limit, which real data never do, so scoring pays nothing for the check.
    ``cells`` returns the cell names (only a message needs them).
    """
    largest = X.max() if X.size else 0
    if float(largest) * X.shape[1] > validate.INT32_MAX:
        totals = validate.row_sums(as_scipy(X))
        validate.check_totals_fit_int32(totals, cells(), f"{name}.X")


def check_input(adata, name: str, key: str, control: str) -> ScorerInput:
    """Validate one AnnData (or :class:`ScorerFile`) for scoring.

    Parameters
    ----------
    adata
        The AnnData (cells x genes), or the scorer's parts of an h5ad file.
    name
        Name of the file, for messages.
    key
        The ``obs`` column of perturbation labels.
    control
        The control label.

    Returns
    -------
    ScorerInput
    """
    light = isinstance(adata, ScorerFile)
    if not light and (not hasattr(adata, "obs") or not hasattr(adata, "var_names")):
        raise InputError(f"{name} is a {type(adata).__name__}, not an AnnData")
    validate.check_unique_names(adata.var_names, "gene", name)
    # Strings only: the summaries look the control up among string labels.
    validate.check_control_label(control, allow_int=False)
    X = as_matrix(adata, name)
    labels = read_labels(adata, key, name)
    if control not in set(labels.tolist()):
        raise InputError(
            f"{name} has no control cells labelled {control!r} in obs[{key!r}]: include the "
            "control cells, or pass control_label= / --control-label"
        )
    is_log1p = detect_log1p(X, name)
    if not is_log1p:
        check_totals(X, adata.obs_names if light else lambda: adata.obs_names, name)
    genes = np.asarray(adata.var_names).astype(str)
    return ScorerInput(name=name, X=X, labels=labels, genes=genes, is_log1p=is_log1p)


def check_same_genes(first: ScorerInput, second: ScorerInput) -> None:
    """Require the same genes in the same order, naming what differs."""
    if first.genes.shape == second.genes.shape and (first.genes == second.genes).all():
        return
    a, b = first.name, second.name
    if len(first.genes) != len(second.genes) or set(first.genes) != set(second.genes):
        # Sorted, as pandas' Index.difference gives them.
        missing = [str(g) for g in np.setdiff1d(first.genes, second.genes)[:3]]
        extra = [str(g) for g in np.setdiff1d(second.genes, first.genes)[:3]]
        raise InputError(
            f"{b} has {len(second.genes)} genes and {a} has {len(first.genes)}, with different "
            f"names (in {a} only: {missing}; in {b} only: {extra}): subset both to the same "
            "genes"
        )
    position = int(np.flatnonzero(first.genes != second.genes)[0])
    raise InputError(
        f"{b} has the genes of {a} in another order (first difference at column {position}: "
        f"{str(second.genes[position])!r} vs {str(first.genes[position])!r}): reorder with "
        f"{b} = {b}[:, {a}.var_names]"
    )


def check_same_labels(first: ScorerInput, second: ScorerInput) -> None:
    """Require the same set of perturbation labels in both files."""
    a_set, b_set = set(first.labels.tolist()), set(second.labels.tolist())
    if a_set == b_set:
        return
    only_a = sorted(str(label) for label in a_set - b_set)
    only_b = sorted(str(label) for label in b_set - a_set)
    raise InputError(
        f"{first.name} and {second.name} have different perturbations (only in "
        f"{first.name}: {len(only_a)} {only_a[:3]}; only in {second.name}: {len(only_b)} "
        f"{only_b[:3]}): predict exactly the perturbations of {first.name}"
    )


def check_pair(
    pred,
    real,
    *,
    perturbation_key: str,
    control_label: str,
    pred_name: str = "pred",
    executor: Executor | None = None,
) -> tuple[ScorerInput, ScorerInput]:
    """Validate a prediction against the real data; return both as :class:`ScorerInput`.

    With an ``executor`` the two files are checked side by side; the real file's problem,
    if both have one, is still the one raised. ``real`` may be a :class:`ScorerInput`
    validated before (a baseline is checked against the same real data).

    Raises
    ------
    InputError
        On any problem that makes the pair unscorable.
    """
    if isinstance(real, ScorerInput):
        real_job = _submit(None, lambda: real)
    else:
        real_job = _submit(executor, check_input, real, "real", perturbation_key, control_label)
    pred_job = _submit(executor, check_input, pred, pred_name, perturbation_key, control_label)
    real_in, pred_in = real_job.result(), pred_job.result()
    check_same_genes(real_in, pred_in)
    check_same_labels(real_in, pred_in)
    if len(set(real_in.labels.tolist())) < 2:
        raise InputError(
            f"real has only control cells ({control_label!r}): at least one perturbation is "
            "needed to score"
        )
    return pred_in, real_in


def _submit(executor: Executor | None, fn, *args) -> Future:
    """``executor.submit(fn, *args)``, or its result computed here when there is none."""
    if executor is not None:
        return executor.submit(fn, *args)
    future: Future = Future()
    try:
        future.set_result(fn(*args))
    except BaseException as error:  # re-raised by result(), as from an executor
        future.set_exception(error)
    return future
