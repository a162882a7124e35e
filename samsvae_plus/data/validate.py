"""Checks on user input, shared by registration, the gate of the model verbs
(:mod:`samsvae_plus.data.checked`), prediction requests, the scorer and the CLI.

Every check raises :class:`~samsvae_plus.errors.InputError` with one line that names the
field, the problem and the fix, and runs before any heavy work starts. Each function
checks one thing, so that every entry point asks the same question the same way.
"""

from __future__ import annotations

import math
import numbers
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from samsvae_plus.errors import InputError

if TYPE_CHECKING:
    import pandas as pd
    import scipy.sparse as sp

# anndata and pandas are imported where an AnnData or a pandas object is inspected, so
# that light entry points (the challenge scorer's CLI) can use these checks without them.

# Dense matrices are checked in row blocks so that a check never doubles peak memory.
_ROW_BLOCK = 4096
# A backed (on-disk) sparse matrix is read in blocks of this many rows, so that checking
# a million-cell h5ad holds one block in memory (tens of MB), never the whole matrix.
BACKED_ROW_BLOCK = 32768
# Counts and per-cell totals must fit a signed 32-bit integer: h5ad writers, scanpy and
# torch index and sum counts as int32 in places, and no real cell comes close.
INT32_MAX = int(np.iinfo(np.int32).max)


# ---------------------------------------------------------------- containers and scalars


def check_is_anndata(adata, where: str = "adata") -> None:
    """Require an AnnData, possibly empty (a model's registry or genes can be read from one)."""
    import anndata as ad

    if not isinstance(adata, ad.AnnData):
        raise InputError(
            f"{where} must be an AnnData, got {type(adata).__name__}; load one with "
            "anndata.read_h5ad"
        )


def check_anndata(adata, where: str = "adata") -> None:
    """Require a non-empty AnnData (at least one cell and one gene)."""
    check_is_anndata(adata, where)
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise InputError(
            f"{where} is empty ({adata.n_obs} cells x {adata.n_vars} genes); pass at least "
            "one cell and one gene"
        )


def check_positive_int(value, name: str) -> int:
    """Return ``value`` as an int if it is a whole number >= 1 (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_seed(value) -> int:
    """Return ``value`` as an int if it can seed every generator (0 <= seed < 2**63)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or not (0 <= value < 2**63)
    ):
        raise InputError(f"seed must be an integer between 0 and 2**63 - 1, got {value!r}")
    return int(value)


def check_positive_number(value, name: str, *, at_most: float | None = None) -> float:
    """Return ``value`` as a float if it is a finite number > 0 (and <= ``at_most``)."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real)
    try:
        ok = ok and math.isfinite(float(value)) and value > 0
    except OverflowError:  # an int too large for a float
        ok = False
    if not ok:
        raise InputError(f"{name} must be a positive, finite number, got {value!r}")
    if at_most is not None and value > at_most:
        raise InputError(f"{name} must be a positive number at most {at_most:.10g}, got {value!r}")
    return float(value)


def check_dense_epochs(dense_epochs, max_epochs: int) -> None:
    """Require a dense phase that leaves at least one epoch for the rotated, sparse phase."""
    if (
        isinstance(dense_epochs, bool)
        or not isinstance(dense_epochs, numbers.Integral)
        or not (0 <= dense_epochs < max_epochs)
    ):
        raise InputError(
            f"dense_epochs must be an integer from 0 to max_epochs - 1 ({max_epochs - 1}), "
            f"got {dense_epochs!r}"
        )


def check_device(device) -> None:
    """Require ``"auto"``/None, ``"cpu"``, or an accelerator this machine has.

    torch would otherwise fail late and in its own words (an AssertionError for CUDA on a
    CPU-only build).
    """
    import torch  # here, so that reading data never needs torch

    if device is None or (isinstance(device, str) and device == "auto"):
        return
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(
            f"device {device!r} is not a device; pass 'auto', 'cpu' or 'cuda'"
        ) from None
    if parsed.type == "cpu":
        return
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(
                f"device {device!r} needs CUDA, which this machine (or torch build) lacks; "
                "pass device='cpu' or 'auto'"
            )
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise InputError(
                f"device {device!r} does not exist: this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
        return
    if parsed.type == "mps" and torch.backends.mps.is_available():
        return
    raise InputError(f"device {device!r} is not available; pass 'auto', 'cpu' or 'cuda'")


# ---------------------------------------------------------------- count matrices


def is_scipy_sparse(matrix) -> bool:
    """Whether ``matrix`` is a scipy sparse matrix or array, without importing scipy (where
    ``scipy.sparse`` was never imported, no such object exists)."""
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(matrix)


def is_backed_sparse(matrix) -> bool:
    """Whether ``matrix`` is a sparse matrix on disk (``adata.X`` of a backed AnnData)."""
    ad = sys.modules.get("anndata")
    if ad is None:  # not imported, so no anndata object exists
        return False
    return isinstance(matrix, (ad.abc.CSRDataset, ad.abc.CSCDataset))


def sparse_row_blocks(matrix, rows: int | None = None) -> Iterable[tuple[int, sp.csr_matrix]]:
    """``(start, block)`` for consecutive blocks of ``rows`` rows (by default
    ``BACKED_ROW_BLOCK``) of a backed sparse matrix, each read from disk as a CSR matrix."""
    import scipy.sparse as sp

    rows = rows or BACKED_ROW_BLOCK
    for start in range(0, matrix.shape[0], rows):
        yield start, sp.csr_matrix(matrix[start : start + rows])


def _value_blocks(matrix) -> Iterable[np.ndarray]:
    """The stored values of a dense or sparse matrix, in memory-bounded blocks."""
    if is_scipy_sparse(matrix):
        yield np.asarray(matrix.data)
        return
    if is_backed_sparse(matrix):
        for _, block in sparse_row_blocks(matrix):
            yield block.data
        return
    matrix = np.asarray(matrix) if not hasattr(matrix, "shape") else matrix
    for start in range(0, matrix.shape[0], _ROW_BLOCK):
        yield np.asarray(matrix[start : start + _ROW_BLOCK])


def check_count_dtype(dtype, where: str) -> None:
    """Require an integer or float32/float64 dtype: float16 loses counts above 2048, and
    object, bool or string arrays are not counts."""
    dtype = np.dtype(dtype)
    if dtype == np.float16:
        raise InputError(
            f"{where} is float16, which cannot hold counts above 2048 exactly; "
            f"convert it with {where} = {where}.astype('float32')"
        )
    if dtype == np.bool_ or not (
        np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)
    ):
        raise InputError(
            f"{where} has dtype {dtype}; store counts as an integer or float array "
            f"({where} = {where}.astype('float32'))"
        )


# What to do about normalised values where the caller chooses the layer (registration).
LAYER_FIX = "pass raw counts with layer='counts' (or whichever layer holds them)"


def check_counts(matrix, where: str, *, fix: str = LAYER_FIX) -> None:
    """Require finite, non-negative, integer-valued counts of a usable dtype, each of which
    fits an int32.

    Parameters
    ----------
    matrix
        A dense array or scipy sparse matrix of cells x genes.
    where
        How the user names this matrix (``"adata.X"``, ``"adata.layers['counts']"``),
        used in the message.
    fix
        How to pass raw counts instead of negative or normalised values, for callers that
        read a fixed location; by default :data:`LAYER_FIX`.
    """
    check_count_dtype(matrix.dtype, where)
    is_integer_dtype = np.issubdtype(np.dtype(matrix.dtype), np.integer)
    for values in _value_blocks(matrix):
        if values.size == 0:
            continue
        if not is_integer_dtype and not np.isfinite(values).all():
            raise InputError(
                f"{where} contains NaN or infinite values; remove or impute them before setup"
            )
        if values.min() < 0:
            raise InputError(
                f"{where} contains negative values; SAMS-VAE models raw UMI counts, so {fix}"
            )
        if not is_integer_dtype and (values != np.round(values)).any():
            raise InputError(f"{where} contains non-integer values, so it looks normalised; {fix}")
        check_count_range(values.max(), where)


def check_count_range(largest, where: str) -> None:
    """Reject a single count above the int32 range, which no sequencing run produces; it
    means a corrupted or wrongly scaled matrix."""
    if float(largest) > INT32_MAX:
        raise InputError(
            f"{where} has a count of {float(largest):.4g}, above the int32 limit 2**31-1; "
            "pass raw UMI counts (this looks like corrupted or rescaled data)"
        )


def row_sums(matrix) -> np.ndarray:
    """Per-row totals of a dense, sparse or backed sparse matrix as float64 (exact for any
    int32 total)."""
    if is_backed_sparse(matrix):
        return np.concatenate([row_sums(block) for _, block in sparse_row_blocks(matrix)])
    if is_scipy_sparse(matrix):
        return np.asarray(matrix.sum(axis=1, dtype=np.float64)).ravel()
    return np.asarray(np.asarray(matrix).sum(axis=1, dtype=np.float64)).ravel()


def check_totals_fit_int32(totals: np.ndarray, cell_names: pd.Index, where: str) -> None:
    """Reject cells whose total count overflows int32, for the same reason as
    :func:`check_count_range`."""
    too_large = np.flatnonzero(totals > INT32_MAX)
    if too_large.size:
        first = too_large[0]
        raise InputError(
            f"{too_large.size} cell(s) of {where} have a total count above the int32 limit "
            f"2**31-1 (first: {cell_names[first]!r} with {totals[first]:.4g}); pass raw UMI "
            "counts (this looks like corrupted or rescaled data)"
        )


def check_no_empty_cells(totals: np.ndarray, cell_names: pd.Index) -> None:
    """Reject cells whose counts over the modelled genes sum to zero."""
    empty = np.flatnonzero(totals <= 0)
    if empty.size:
        raise InputError(
            f"{empty.size} cell(s) have zero counts over the modelled genes "
            f"(first: {cell_names[empty[0]]!r}); remove them with "
            "scanpy.pp.filter_cells(adata, min_counts=1)"
        )


def check_positive_finite(values: np.ndarray, where: str) -> None:
    """Require strictly positive, finite numbers (library sizes) in every cell."""
    values = np.asarray(values)
    if values.dtype == np.bool_ or not (
        np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)
    ):
        raise InputError(
            f"{where} has dtype {values.dtype}; it must hold numbers (library sizes), "
            "positive and finite in every cell"
        )
    values = values.astype(np.float64)
    if not np.isfinite(values).all() or (values <= 0).any():
        raise InputError(
            f"{where} must be positive and finite in every cell; fix or drop those cells"
        )


# ---------------------------------------------------------------- names and labels


def _first_bad_text(labels: Sequence[str]) -> tuple[str, str] | None:
    """The first label that is not printable or not NFC, with the problem, or None."""
    # ASCII without control characters is always NFC, so the common case is one pass in C.
    joined = "".join(labels)
    if joined.isascii() and joined.isprintable():
        return None
    for label in labels:
        if not label.isprintable():
            return label, "printable"
        if not unicodedata.is_normalized("NFC", label):
            return label, "nfc"
    return None


def check_label_text(labels: Iterable, where: str) -> None:
    """Require labels in Unicode NFC form without control or invisible characters.

    Non-ASCII labels (``'ÉPÉE'``, ``'基因'``) are fine. A label in another normal form, or
    with a control character, looks like a known label but compares unequal to it, so a
    perturbation or gene would silently split in two.
    """
    unique = list(dict.fromkeys(str(label) for label in labels))
    bad = _first_bad_text(unique)
    if bad is None:
        return
    label, problem = bad
    if problem == "nfc":
        # ascii() spells out the combining characters that make the label look normal.
        raise InputError(
            f"{where} has labels not in Unicode NFC form (e.g. {ascii(label)}); normalise "
            "them with unicodedata.normalize('NFC', label)"
        )
    # repr() escapes exactly the non-printable characters, so the culprit shows.
    char = next(ch for ch in label if not ch.isprintable())
    raise InputError(
        f"{where} has labels with the non-printable character {char!r} (e.g. {label!r}); "
        "remove it, e.g. ''.join(c for c in label if c.isprintable()), and normalise with "
        "unicodedata.normalize('NFC', label)"
    )


def raw_labels(column: pd.Series):
    """The labels of a column as stored, for :func:`check_label_text`.

    Neither ``unique()`` nor ``astype(str)`` will do: pandas hashes strings up to the first
    NUL (``'A\\x00'`` and ``'A'`` count as one value) and numpy drops trailing NULs, so
    either would hide exactly the labels the check is for. A categorical column is checked
    through its categories, which are what its cells hold.
    """
    import pandas as pd

    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.categories
    return column.to_numpy()


def check_unique_names(names, what: str, owner: str = "adata") -> None:
    """Require non-empty, unique, printable NFC names (``what`` is ``"gene"`` or ``"cell"``;
    ``owner`` is how messages name the AnnData). ``names`` is a pandas Index or an array
    of names as stored (the scorer's h5py reader)."""
    attribute = f"{owner}.{'var' if what == 'gene' else 'obs'}_names"
    if any(not str(name).strip() for name in names):
        raise InputError(f"some {what} names in {attribute} are empty; give every {what} a name")
    repeated = _first_repeat(names)
    if repeated:
        raise InputError(
            f"{what} names are not unique in {attribute} (e.g. {repeated[0]!r} repeats); call "
            f"{attribute}_make_unique()"
        )
    check_label_text(names, attribute)


def _first_repeat(names) -> list:
    """``[name]`` for the first name that repeats an earlier one, ``[]`` when all differ."""
    if hasattr(names, "duplicated"):  # a pandas Index finds them in C
        return [] if names.is_unique else [names[names.duplicated()][0]]
    seen: set = set()
    for name in names:
        if name in seen:
            return [name]
        seen.add(name)
    return []


def check_obs_column(
    obs: pd.DataFrame, key: str, role: str, *, allow_unused: bool = False
) -> pd.Series:
    """Return ``obs[key]`` as strings after checking it exists and has no missing, empty
    or malformed labels.

    Unused categorical levels are an error at registration, where they usually mean the
    data were subset without cleaning up, and are ignored with ``allow_unused=True``
    (subsets of the training data at predict time keep their levels).
    """
    import pandas as pd

    if not isinstance(key, str) or key not in obs.columns:
        shown = ", ".join(map(repr, list(obs.columns)[:8])) or "none"
        raise InputError(
            f"{role} key {key!r} is not a column of adata.obs (columns: {shown}); "
            f"pass the column that holds the {role} labels"
        )
    column = obs[key]
    where = f"adata.obs[{key!r}]"
    if column.isna().any():
        raise InputError(
            f"{where} has {int(column.isna().sum())} missing label(s); label or remove those cells"
        )
    check_label_text(raw_labels(column), where)
    labels = column.astype(str)
    if (labels.str.strip() == "").any():
        raise InputError(f"{where} has empty labels; label or remove those cells")
    if not allow_unused and isinstance(column.dtype, pd.CategoricalDtype):
        unused = column.cat.categories.difference(pd.Index(column.unique()))
        if len(unused):
            raise InputError(
                f"{where} has unused categories ({', '.join(map(str, unused[:5]))}); "
                f"drop them with {where} = {where}.cat.remove_unused_categories()"
            )
    return labels


def check_control_label(control_label, *, allow_int: bool = True) -> str:
    """Return the control label as a string. An integer is accepted at registration
    (``allow_int``), because obs labels are compared as strings there (``1`` matches a
    column of integers)."""
    allowed = (str, np.str_, numbers.Integral) if allow_int else (str, np.str_)
    if isinstance(control_label, bool) or not isinstance(control_label, allowed):
        raise InputError(f"control_label must be a string such as 'control', got {control_label!r}")
    label = str(control_label)
    if not label.strip():
        raise InputError("control_label is empty; pass the label of unperturbed cells")
    check_label_text([label], "control_label")
    return label


def check_delimiter(delimiter) -> None:
    """Require a non-blank string to split combination labels on (labels are stripped
    around it, so whitespace alone would split nothing)."""
    if not isinstance(delimiter, str) or not delimiter.strip():
        raise InputError(
            f"combination_delimiter must be a non-empty string such as '+', got {delimiter!r}"
        )


def check_context_request(context, known: Sequence[str]) -> None:
    """Require a context label the model knows (``sample(context=...)``, the ATE's)."""
    if not isinstance(context, str):
        raise InputError(
            f"context must be a context label (one of {list(known)[:8]}) or None, got {context!r}"
        )
    check_label_text([context], "context")
    check_known_contexts([context], known)


def check_known_contexts(labels: Iterable[str], known: Sequence[str]) -> None:
    """Require contexts seen in training: the basal prior has one learned mean per training
    context and the MLP encoder was fitted on those only."""
    unknown = sorted(set(map(str, labels)) - set(known))
    if unknown:
        raise InputError(
            f"context(s) {unknown[:5]} were not seen in training (known: {list(known)[:8]}); "
            "the MLP encoder cannot handle unseen contexts, so predict for a known context "
            "or retrain with these cells"
        )


def check_request_labels(values, where: str) -> list[str]:
    """Condition labels a user asked for (one label or a list of them) as strings.

    Integers are accepted because labels are compared as strings (an obs column of
    integers registers ``'1'``); anything else (None, floats, nested lists) is refused
    rather than turned into a label such as ``'None'`` that then matches nothing.
    """
    if isinstance(values, (str, np.str_)):
        values = [values]
    elif not isinstance(values, Iterable) or isinstance(values, (bytes, dict)):
        raise InputError(
            f"{where} must be a label or a list of labels such as ['A', 'A+B'], "
            f"got {type(values).__name__}"
        )
    labels = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (str, np.str_, numbers.Integral)):
            raise InputError(
                f"{where} must hold condition labels (strings), got {value!r}; pass names "
                "such as 'A' or 'A+B'"
            )
        labels.append(str(value))
    if not labels:
        raise InputError(f"{where} is empty; name at least one condition")
    check_label_text(labels, where)
    return labels
