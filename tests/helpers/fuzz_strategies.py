"""Hypothesis strategies for the fuzz suite: tiny AnnData objects, valid and malformed.

An example is drawn in two steps. Hypothesis picks the structure (shape, layout, dtype,
label alphabet, column kind, which defects to inject) and a seed; numpy fills in the
values from that seed. Shrinking then works on the structure, which is what explains a
failure, and examples stay cheap to build.

Every defect is injected so that it is really present, and a case records the defects it
carries. The tests can then assert more than "no crash": a case with defects must be
rejected with an :class:`~samsvae_plus.errors.InputError` whose message names one of
them (:data:`PATTERNS`), and a clean case must be accepted.
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck
from hypothesis import strategies as st

# Settings of every fuzz test: the same examples on every run (derandomize, no example
# database), so that CI is reproducible, and no deadline, as the first example of a test
# pays for imports and warm-up.
FUZZ = dict(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# anndata warns about duplicate names whenever such an object is copied; the fuzz suite
# makes them on purpose (and asserts they are rejected), so the warning is noise here.
QUIET_NAMES = pytest.mark.filterwarnings("ignore:(Variable|Observation) names are not unique")

CONTROL = "control"
SCORER_CONTROL = "non-targeting"
INT32_MAX = 2**31 - 1

# Perturbed genes: plain ASCII and non-ASCII names in NFC form, all valid.
ASCII_GENES = ("A", "B", "KLF1", "MAP2K6")
UNICODE_GENES = ("ÉPÉE", "基因", "Δ-gène", "ñandú")
# NFC names whose NFD form differs, to build labels that look right but are not NFC.
DECOMPOSABLE = ("ÉPÉE", "ñandú", "Å")
# Control, format and separator characters that must never be part of a label. NUL and the
# other C0 controls cannot all be written to h5ad, hence the subset for files.
BAD_CHARS = ("\x00", "\t", "\n", "\x1b", "\x7f", "\u200b", "\u00a0", "\u2028")
BAD_CHARS_IN_FILES = ("\t", "\n", "\x1b", "\u200b", "\u00a0", "\u2028")
CONTEXTS = ("ctx0", "細胞")

# What the message must mention for each defect (a regex). A case with several defects
# passes when the message names any one of them: which one is reported first is the
# order of the checks, not part of the contract.
PATTERNS = {
    "nan": r"NaN",
    "inf": r"infinite",
    "negative": r"negative",
    "fraction": r"non-integer",
    "log_too_large": r"neither counts nor log1p",
    "float16": r"float16",
    "object": r"dtype object",
    "bool": r"dtype bool",
    "int32_value": r"int32 limit|neither counts nor log1p",
    "int32_total": r"int32 limit",
    "zero_cell": r"zero counts",
    "dup_gene": r"gene names are not unique",
    "dup_cell": r"cell names are not unique",
    "empty_gene": r"gene names in .* are empty",
    "empty_cell": r"cell names in .* are empty",
    "nfd_gene": r"NFC",
    "bad_char_gene": r"non-printable",
    "bad_char_cell": r"non-printable",
    "nfd_label": r"NFC",
    "bad_char_label": r"non-printable",
    "unused_level": r"unused categories",
    "missing_label": r"missing label",
    "empty_label": r"empty label",
    "no_control": r"control label|no control cells",
    "all_control": r"every cell is a control|only control cells|different perturbations",
    "one_cell": r"every cell is a control",
    "bad_combination": r"empty gene name|same gene twice",
    "missing_key": r"not a column|has no column",
    "missing_layer": r"not in adata\.layers",
    "bad_library_size": r"adata\.obs\['depth'\]",
    "bad_context_label": r"obs\['cell_type'\]",
    "gene_order": r"another order",
    "gene_rename": r"genes are missing|different names",
    "extra_gene": r"another order or with extra genes",
    "unknown_perturbation": r"never saw perturbed",
    "unseen_context": r"MLP encoder cannot handle unseen contexts",
    "label_sets_differ": r"different perturbations",
    "not_anndata": r"AnnData",
    "no_cells": r"is empty|no control cells",
}


# How many defects an example gets, drawn uniformly from one of these. MIXED favours
# defects (registration and the scorer are cheap, and every defect should be hit often);
# MOSTLY_CLEAN leaves two examples in three clean, where a clean example is what exercises
# the expensive path (training, sampling) and a defect would end it early.
MIXED = (0, 1, 1, 2)
MOSTLY_CLEAN = (0, 0, 0, 0, 1, 1, 2)


@st.composite
def some_of(draw, options, counts=MIXED):
    """Zero, one or two distinct items of ``options``, as a list.

    Taken from a permutation rather than with ``st.lists(st.sampled_from(...))``, which
    under ``derandomize`` rarely picks the last options; here each option leads about as
    often, and a lone defect (the sharpest test of a message) is the most common case.
    """
    k = draw(st.sampled_from(counts))
    return list(draw(st.permutations(list(options)))[:k])


def message_names_a_defect(message: str, defects) -> bool:
    """Whether an error message names at least one of the defects."""
    return any(re.search(PATTERNS[d], message) for d in defects)


def nfd(label: str) -> str:
    """``label`` in decomposed form (differs from the NFC original for DECOMPOSABLE)."""
    return unicodedata.normalize("NFD", label)


def quiet_anndata(**kwargs) -> ad.AnnData:
    """An AnnData built without anndata's warnings about names (the checks report them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ad.AnnData(**kwargs)


# ---------------------------------------------------------------- count matrices

VALUE_DEFECTS = ("nan", "inf", "negative", "fraction", "int32_value", "int32_total", "zero_cell")
DTYPE_DEFECTS = ("float16", "object", "bool")


def counts_with_defects(rng, n_cells, n_genes, dtype, defects, rows):
    """Random valid counts (every cell has a count), then the value and dtype defects.

    ``rows`` is a list of free row indices; each row-level defect takes one, so that two
    defects never cancel out in the same cell. Returns the matrix (as ``dtype``, adjusted
    where a defect needs another) and the defects actually injected.
    """
    counts = rng.integers(0, 6, size=(n_cells, n_genes)).astype(np.float64)
    counts[np.arange(n_cells), rng.integers(0, n_genes, size=n_cells)] += 1
    applied = []
    for defect in defects:
        if defect not in VALUE_DEFECTS or not rows:
            continue
        if defect == "int32_total" and n_genes < 2:
            continue
        i, j = rows.pop(), int(rng.integers(n_genes))
        if defect == "nan":
            counts[i, j] = np.nan
        elif defect == "inf":
            counts[i, j] = np.inf
        elif defect == "negative":
            counts[i, j] = -float(rng.integers(1, 4))
        elif defect == "fraction":
            counts[i, j] += 0.5
        elif defect == "int32_value":
            counts[i, j] = 2.0**31 + float(rng.integers(0, 3))
        elif defect == "int32_total":
            counts[i, :] = 0
            counts[i, :2] = 2**30 + 1  # each fits an int32, their sum does not
        elif defect == "zero_cell":
            counts[i, :] = 0
        applied.append(defect)
    dtype = np.dtype(dtype)
    if {"nan", "inf", "fraction"} & set(applied) and not np.issubdtype(dtype, np.floating):
        dtype = np.dtype(np.float64)
    if {"int32_value", "int32_total"} & set(applied) and dtype.itemsize < 8:
        dtype = np.dtype(np.float64 if np.issubdtype(dtype, np.floating) else np.int64)
    if "negative" in applied and np.issubdtype(dtype, np.unsignedinteger):
        dtype = np.dtype(np.int64)
    for defect in DTYPE_DEFECTS:
        if defect in defects:
            dtype = np.dtype({"float16": np.float16, "object": object, "bool": bool}[defect])
            applied.append(defect)
            break
    with np.errstate(invalid="ignore", over="ignore"):
        matrix = counts.astype(dtype)
    return matrix, applied


def layout(matrix: np.ndarray, kind: str):
    """``matrix`` as dense, CSR or CSC (scipy.sparse has no float16, object or bool here)."""
    if kind == "dense" or matrix.dtype in (np.float16, object, bool):
        return matrix
    return sp.csr_matrix(matrix) if kind == "csr" else sp.csc_matrix(matrix)


# ---------------------------------------------------------------- registration cases

NAME_DEFECTS = ("dup_gene", "dup_cell", "empty_gene", "empty_cell", "nfd_gene")
NAME_DEFECTS += ("bad_char_gene", "bad_char_cell")
LABEL_DEFECTS = ("nfd_label", "bad_char_label", "missing_label", "empty_label")
LABEL_DEFECTS += ("bad_combination",)
SETUP_DEFECTS = (
    *VALUE_DEFECTS,
    *DTYPE_DEFECTS,
    *NAME_DEFECTS,
    *LABEL_DEFECTS,
    "unused_level",
    "no_control",
    "all_control",
    "missing_key",
    "missing_layer",
    "bad_library_size",
    "bad_context_label",
)
# Defects an h5ad file can carry (object arrays and NUL characters cannot be written).
FILE_DEFECTS = tuple(d for d in SETUP_DEFECTS if d != "object")


@dataclass
class Case:
    """One fuzzed AnnData with the arguments of ``setup_anndata`` and its defects."""

    adata: ad.AnnData
    setup_kwargs: dict
    defects: tuple[str, ...]
    perturbations: tuple[str, ...] = ()

    @property
    def is_valid(self) -> bool:
        return not self.defects


def _labels(rng, n_cells, genes, delimiter):
    """Condition labels: cell 0 is a control, cell 1 perturbed, the rest at random."""
    singles = list(genes)
    combos = [f"{a}{delimiter}{b}" for a in genes for b in genes if a < b]
    pool = [CONTROL, *singles, *combos]
    labels = [str(pool[k]) for k in rng.integers(0, len(pool), size=n_cells)]
    labels[0] = CONTROL
    if n_cells > 1:
        labels[1] = singles[int(rng.integers(len(singles)))]
    return labels


def bad_char_name(rng, base: str, chars) -> str:
    char = chars[int(rng.integers(len(chars)))]
    at = int(rng.integers(0, len(base) + 1))
    return base[:at] + char + base[at:]


@st.composite
def registration_cases(
    draw, defects_from=SETUP_DEFECTS, *, for_files=False, max_cells=10, defect_counts=MIXED
):
    """A :class:`Case` for ``setup_anndata``: random shape, layout, dtype, labels and
    columns, with zero to two defects from ``defects_from`` (how many: a draw from
    ``defect_counts``). ``for_files`` keeps to values an h5ad file can hold."""
    bad_chars = BAD_CHARS_IN_FILES if for_files else BAD_CHARS
    # One cell (which cannot hold a control and a perturbed cell) in about one case in 12.
    n_cells = draw(st.integers(1, max_cells))
    if n_cells == 1 and draw(st.integers(0, 3)):
        n_cells = draw(st.integers(2, max_cells))
    n_genes = draw(st.integers(1, 5))
    kind = draw(st.sampled_from(["dense", "csr", "csc"]))
    dtype = draw(st.sampled_from(["int32", "int64", "uint16", "float32", "float64"]))
    unicode = draw(st.booleans())
    n_perturbed = draw(st.integers(1, 3))
    column_kind = draw(st.sampled_from(["categorical", "string"]))
    delimiter = draw(st.sampled_from(["+", "|"]))
    use_layer = draw(st.booleans())
    use_context = draw(st.booleans())
    use_library = draw(st.booleans())
    wanted = draw(some_of(defects_from, defect_counts))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    genes = (UNICODE_GENES if unicode else ASCII_GENES)[:n_perturbed]
    labels = _labels(rng, n_cells, genes, delimiter)
    applied = ["one_cell"] if n_cells == 1 else []
    rows = list(rng.permutation(n_cells))
    matrix, value_defects = counts_with_defects(rng, n_cells, n_genes, dtype, wanted, rows)
    applied += value_defects

    var_names = [f"{'基因' if unicode else 'g'}{j}" for j in range(n_genes)]
    obs_names = [f"cell{i}" for i in range(n_cells)]
    if "dup_gene" in wanted and n_genes > 1:
        var_names[1] = var_names[0]
        applied.append("dup_gene")
    if "dup_cell" in wanted and n_cells > 1:
        obs_names[-1] = obs_names[0]
        applied.append("dup_cell")
    if "empty_gene" in wanted:
        var_names[-1] = draw(st.sampled_from(["", " "]))
        applied.append("empty_gene")
    if "empty_cell" in wanted:
        obs_names[0] = ""
        applied.append("empty_cell")
    if "nfd_gene" in wanted:
        var_names[0] = nfd(DECOMPOSABLE[int(rng.integers(len(DECOMPOSABLE)))])
        applied.append("nfd_gene")
    if "bad_char_gene" in wanted:
        var_names[-1] = bad_char_name(rng, var_names[-1], bad_chars)
        applied.append("bad_char_gene")
    if "bad_char_cell" in wanted:
        obs_names[-1] = bad_char_name(rng, obs_names[-1], bad_chars)
        applied.append("bad_char_cell")

    # Label defects go to cells other than the guaranteed control (0) and perturbed (1)
    # cells, each to its own cell.
    label_rows = list(range(2, n_cells))
    labels = list(labels)
    if "all_control" in wanted:
        labels = [CONTROL] * n_cells
        applied.append("all_control")
    for defect in LABEL_DEFECTS:
        if defect not in wanted or not label_rows:
            continue
        i = label_rows.pop()
        if defect == "nfd_label":
            labels[i] = nfd(DECOMPOSABLE[int(rng.integers(len(DECOMPOSABLE)))])
        elif defect == "bad_char_label":
            labels[i] = bad_char_name(rng, str(genes[0]), bad_chars)
        elif defect == "missing_label":
            labels[i] = None
        elif defect == "empty_label":
            labels[i] = ["", " "][int(rng.integers(2))]
        elif defect == "bad_combination":
            labels[i] = [f"{genes[0]}{delimiter}", f"{genes[0]}{delimiter}{genes[0]}"][
                int(rng.integers(2))
            ]
        applied.append(defect)
    if "no_control" in wanted:
        labels = ["ctrl" if label == CONTROL else label for label in labels]
        applied.append("no_control")

    obs = pd.DataFrame(index=pd.Index(obs_names))
    if column_kind == "categorical" or "unused_level" in wanted:
        column = pd.Categorical(labels)
        if "unused_level" in wanted:
            column = column.add_categories(["GHOST"])
            applied.append("unused_level")
        obs["condition"] = column
    else:
        obs["condition"] = pd.Series(labels, index=obs.index, dtype=object)

    setup_kwargs: dict = {"perturbation_key": "condition", "control_label": CONTROL}
    if delimiter != "+":
        setup_kwargs["combination_delimiter"] = delimiter
    if use_context or "bad_context_label" in wanted:
        contexts = [CONTEXTS[int(k)] for k in rng.integers(0, 2, size=n_cells)]
        if "bad_context_label" in wanted:
            contexts[int(rng.integers(n_cells))] = draw(
                st.sampled_from([None, nfd("Å"), bad_char_name(rng, "ctx", bad_chars)])
            )
            applied.append("bad_context_label")
        obs["cell_type"] = pd.Series(contexts, index=obs.index, dtype=object)
        setup_kwargs["context_key"] = "cell_type"
    if use_library or "bad_library_size" in wanted:
        depth = rng.uniform(100, 1000, size=n_cells)
        if "bad_library_size" in wanted:
            depth = depth.astype(object)
            bad = [0.0, -5.0, np.nan] if for_files else [0.0, -5.0, np.nan, "x"]
            depth[int(rng.integers(n_cells))] = draw(st.sampled_from(bad))
            if for_files:
                depth = depth.astype(np.float64)
            applied.append("bad_library_size")
        obs["depth"] = depth
        setup_kwargs["library_size_key"] = "depth"
    if "missing_key" in wanted:
        setup_kwargs["perturbation_key"] = "guide"
        applied.append("missing_key")

    var = pd.DataFrame(index=pd.Index(var_names))
    if use_layer:
        # X holds log-normalised values, the raw counts are in a layer.
        X = np.log1p(np.abs(np.nan_to_num(np.asarray(matrix, dtype=np.float64))) / 3.0)
        adata = quiet_anndata(X=X.astype(np.float32), obs=obs, var=var)
        adata.layers["counts"] = layout(matrix, kind)
        setup_kwargs["layer"] = "counts"
    else:
        adata = quiet_anndata(X=layout(matrix, kind), obs=obs, var=var)
    if "missing_layer" in wanted:
        setup_kwargs["layer"] = "raw"
        applied.append("missing_layer")
    return Case(adata, setup_kwargs, tuple(applied), perturbations=tuple(genes))


# ---------------------------------------------------------------- data for a trained model

PREDICT_DATA_DEFECTS = (
    *VALUE_DEFECTS,
    "float16",
    "object",
    "dup_cell",
    "empty_cell",
    "bad_char_cell",
    "gene_order",
    "gene_rename",
    "extra_gene",
    "unknown_perturbation",
    "unseen_context",
    "nfd_label",
    "missing_key",
    "not_anndata",
    "no_cells",
)


@st.composite
def cells_for_model(draw, registry, defects_from=PREDICT_DATA_DEFECTS, defect_counts=MOSTLY_CLEAN):
    """Cells a trained model may be asked about (``predict``'s controls, the ATE's basal
    cells), with the registry's genes and zero to two defects.

    Returns ``(adata, defects)``; ``adata`` is not an AnnData for ``not_anndata``.
    """
    n_cells = draw(st.integers(1, 6))
    kind = draw(st.sampled_from(["dense", "csr", "csc"]))
    dtype = draw(st.sampled_from(["int64", "float32", "uint16"]))
    labelled = draw(st.booleans())
    wanted = draw(some_of(defects_from, defect_counts))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if "not_anndata" in wanted:
        return draw(st.sampled_from([None, "cells.h5ad", np.ones((2, 2))])), ("not_anndata",)
    genes = list(registry.genes)
    rows = list(rng.permutation(n_cells))
    matrix, applied = counts_with_defects(rng, n_cells, len(genes), dtype, wanted, rows)
    obs_names = [f"c{i}" for i in range(n_cells)]
    if "dup_cell" in wanted and n_cells > 1:
        obs_names[1] = obs_names[0]
        applied.append("dup_cell")
    if "empty_cell" in wanted:
        obs_names[0] = " "
        applied.append("empty_cell")
    if "bad_char_cell" in wanted:
        obs_names[0] = bad_char_name(rng, obs_names[0], BAD_CHARS)
        applied.append("bad_char_cell")
    if "gene_order" in wanted and len(genes) > 1:
        matrix, genes = matrix[:, ::-1], genes[::-1]
        applied.append("gene_order")
    if "gene_rename" in wanted:
        genes[0] = "NOT_A_GENE"
        applied.append("gene_rename")
    if "extra_gene" in wanted:
        matrix = np.concatenate([matrix, np.ones((n_cells, 1), dtype=matrix.dtype)], axis=1)
        genes.append("EXTRA")
        applied.append("extra_gene")
    obs = pd.DataFrame(index=pd.Index(obs_names))
    key = registry.perturbation_key
    conditions = list(registry.conditions)
    if labelled or "unknown_perturbation" in wanted or "nfd_label" in wanted:
        labels = [conditions[int(k)] for k in rng.integers(0, len(conditions), size=n_cells)]
        if "unknown_perturbation" in wanted:
            labels[-1] = "NOPE"
            applied.append("unknown_perturbation")
        if "nfd_label" in wanted:
            labels[0] = nfd("ÉPÉE")
            applied.append("nfd_label")
        obs[key] = pd.Categorical(labels)
    if registry.context_key is not None:
        contexts = [registry.contexts[int(k)] for k in rng.integers(0, 2, size=n_cells)]
        if "unseen_context" in wanted:
            contexts[-1] = "never-seen"
            applied.append("unseen_context")
        if "missing_key" in wanted:
            applied.append("missing_key")
        else:
            obs[registry.context_key] = pd.Categorical(contexts)
    adata = quiet_anndata(X=layout(matrix, kind), obs=obs, var=pd.DataFrame(index=genes))
    if "no_cells" in wanted:
        adata = adata[:0].copy()
        applied.append("no_cells")
    return adata, tuple(applied)


# ---------------------------------------------------------------- the invariant


def expect(call, defects):
    """Run ``call``: with defects it must raise a one-line InputError naming one of them;
    without, it must succeed. Any other exception propagates and fails the example."""
    from samsvae_plus.errors import InputError

    try:
        result = call()
    except InputError as err:
        message = str(err)
        assert "\n" not in message, message
        assert defects, f"clean input rejected: {message}"
        assert message_names_a_defect(message, defects), f"{defects}: {message}"
        return None
    assert not defects, f"input with defects {defects} was accepted"
    return result
