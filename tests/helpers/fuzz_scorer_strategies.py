"""Hypothesis strategies for the scorer: (pred, real) pairs, valid and malformed.

Built like the AnnData of :mod:`fuzz_strategies`: hypothesis picks the structure and the
defects, numpy the values, and a case records the defects it really carries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from hypothesis import strategies as st

from helpers.fuzz_strategies import (
    BAD_CHARS,
    BAD_CHARS_IN_FILES,
    MIXED,
    SCORER_CONTROL,
    UNICODE_GENES,
    bad_char_name,
    layout,
    nfd,
    quiet_anndata,
    some_of,
)

SCORER_DEFECTS = (
    "nan",
    "inf",
    "negative",
    "log_too_large",
    "object",
    "bool",
    "int32_value",
    "int32_total",
    "dup_gene",
    "empty_gene",
    "nfd_gene",
    "gene_order",
    "gene_rename",
    "label_sets_differ",
    "no_control",
    "all_control",
    "missing_label",
    "empty_label",
    "nfd_label",
    "bad_char_label",
    "missing_key",
    "not_anndata",
)
SCORER_FILE_DEFECTS = tuple(d for d in SCORER_DEFECTS if d not in ("object", "not_anndata"))


def scorer_file(rng, genes, perturbations, *, log1p, dtype, column_kind):
    """One valid expression file: 1-3 cells per label, raw counts or log1p values."""
    labels = [SCORER_CONTROL, *perturbations]
    sizes = rng.integers(1, 4, size=len(labels))
    cell_labels = [label for label, size in zip(labels, sizes, strict=True) for _ in range(size)]
    n = len(cell_labels)
    counts = rng.integers(0, 8, size=(n, len(genes))).astype(np.float64)
    if log1p:
        totals = counts.sum(axis=1, keepdims=True)
        values = np.log1p(np.divide(counts * 1e4, totals, where=totals > 0, out=counts * 0))
        dtype = dtype if dtype in ("float16", "float32", "float64") else "float32"
    else:
        values = counts
    obs = pd.DataFrame(index=pd.Index([f"c{i}" for i in range(n)]))
    if column_kind == "categorical":
        obs["target_gene"] = pd.Categorical(cell_labels)
    else:
        obs["target_gene"] = pd.Series(cell_labels, index=obs.index, dtype=object)
    return values.astype(dtype), obs


@dataclass
class ScorerCase:
    """A (pred, real) pair, optional baseline or reference, and the defects it carries."""

    pred: object
    real: object
    options: dict
    defects: tuple[str, ...]
    perturbations: tuple[str, ...]


def _corrupt_scorer_file(rng, values, obs, genes, defect, perturbations, log1p, bad_chars):
    """Inject one defect into a file's values, labels or genes; return them and whether
    the defect is present."""
    if "target_gene" not in obs.columns:
        return None  # the label column was renamed away by an earlier defect
    values = np.array(values)
    genes = list(genes)
    labels = obs["target_gene"].astype(object).to_numpy().copy()
    n, g = values.shape
    i, j = int(rng.integers(n)), int(rng.integers(g))
    if defect in ("nan", "inf", "log_too_large"):
        values = values.astype(np.float64)
        values[i, j] = {"nan": np.nan, "inf": np.inf, "log_too_large": 20.5}[defect]
    elif defect == "negative":
        values = values.astype(np.float64)
        values[i, j] = -1.5 if log1p else -2.0
    elif defect == "int32_value":
        values = values.astype(np.float64 if log1p else np.int64)
        values[i, j] = 2**31 + 5
    elif defect == "int32_total":
        if log1p or g < 2:
            return None
        values = values.astype(np.int64)
        values[i, :2] = 2**30 + 1
    elif defect == "object":
        values = values.astype(object)
    elif defect == "bool":
        values = values > 0
    elif defect == "dup_gene":
        if g < 2:
            return None
        genes[1] = genes[0]
    elif defect == "empty_gene":
        genes[0] = ""
    elif defect == "nfd_gene":
        genes[0] = nfd("Å")
    elif defect == "label_sets_differ":
        labels = np.where(labels == perturbations[0], "OTHER", labels)
    elif defect == "no_control":
        labels = np.where(labels == SCORER_CONTROL, "ctrl", labels)
    elif defect == "all_control":
        labels[:] = SCORER_CONTROL
    elif defect in ("missing_label", "empty_label", "nfd_label", "bad_char_label"):
        # Not the only control cell, which would make this a missing control instead.
        candidates = [k for k in range(n) if labels[k] != SCORER_CONTROL]
        if not candidates:
            return None
        k = candidates[int(rng.integers(len(candidates)))]
        labels[k] = {
            "missing_label": None,
            "empty_label": "",
            "nfd_label": nfd("ÉPÉE"),
            "bad_char_label": bad_char_name(rng, str(labels[k]), bad_chars),
        }[defect]
    elif defect == "missing_key":
        obs = obs.rename(columns={"target_gene": "guide"})
        return values, obs, genes
    elif defect in ("gene_order", "gene_rename"):
        if defect == "gene_order":
            if g < 2:
                return None
            values, genes = values[:, ::-1], genes[::-1]
        else:
            genes[-1] = "NOT_A_GENE"
        return values, obs, genes
    obs = obs.copy()
    obs["target_gene"] = pd.Categorical(labels) if defect != "missing_label" else labels
    return values, obs, genes


@st.composite
def scorer_cases(draw, defects_from=SCORER_DEFECTS, *, for_files=False, defect_counts=MIXED):
    """A :class:`ScorerCase`: small real and pred files (counts or log1p, any layout,
    float16 log1p included), with zero to two defects in either file. ``for_files``
    keeps to values an h5ad file can hold."""
    bad_chars = BAD_CHARS_IN_FILES if for_files else BAD_CHARS
    n_genes = draw(st.integers(1, 5))
    n_perturbed = draw(st.integers(1, 3))
    unicode = draw(st.booleans())
    names = UNICODE_GENES if unicode else ("P1", "P2", "P3")
    perturbations = tuple(names[:n_perturbed])
    # A perturbation named like a measured gene exercises the target-gene exclusion.
    gene_names = [f"G{j}" for j in range(n_genes)]
    if draw(st.booleans()):
        gene_names[0] = perturbations[0]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    files = {}
    for name in ("real", "pred"):
        log1p = draw(st.booleans())
        kind = draw(st.sampled_from(["dense", "csr", "csc"]))
        dtype = draw(st.sampled_from(["int32", "int64", "float16", "float32", "float64"]))
        if not log1p and dtype == "float16":
            dtype = "float32"
        column_kind = draw(st.sampled_from(["categorical", "string"]))
        values, obs = scorer_file(
            rng, gene_names, perturbations, log1p=log1p, dtype=dtype, column_kind=column_kind
        )
        files[name] = dict(values=values, obs=obs, genes=list(gene_names), log1p=log1p, kind=kind)
    if draw(st.booleans()):
        # Unused levels and duplicate cell names are fine for the scorer.
        obs = files["pred"]["obs"]
        obs["target_gene"] = pd.Categorical(obs["target_gene"]).add_categories(["UNUSED"])
    wanted = draw(some_of(defects_from, defect_counts))
    applied = []
    not_anndata = None
    for defect in wanted:
        if defect == "not_anndata":
            not_anndata = draw(st.sampled_from(["pred", "real"]))
            applied.append(defect)
            continue
        target = draw(st.sampled_from(["pred", "real"]))
        f = files[target]
        result = _corrupt_scorer_file(
            rng, f["values"], f["obs"], f["genes"], defect, perturbations, f["log1p"], bad_chars
        )
        if result is None:
            continue
        f["values"], f["obs"], f["genes"] = result
        applied.append(defect)
    adatas = {}
    for name, f in files.items():
        adatas[name] = quiet_anndata(
            X=layout(f["values"], f["kind"]),
            obs=f["obs"],
            var=pd.DataFrame(index=pd.Index(f["genes"])),
        )
    if not_anndata is not None:
        adatas[not_anndata] = adatas[not_anndata].X
    mode = draw(st.sampled_from(["none", "none", "baseline", "reference"]))
    options = {}
    if mode == "baseline":
        options["baseline"] = adatas["real"].copy() if hasattr(adatas["real"], "copy") else None
    elif mode == "reference":
        options["reference"] = adatas["real"].copy() if hasattr(adatas["real"], "copy") else None
    options = {k: v for k, v in options.items() if v is not None}
    return ScorerCase(adatas["pred"], adatas["real"], options, tuple(applied), perturbations)
