"""Average treatment effects (ATE) in data and their agreement with a model."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from samsvae_plus.data.registry import counts_matrix
from samsvae_plus.data.transforms import log_normalize

_ROW_BLOCK = 4096
CONTEXT_LEVEL = "context"
CONDITION_LEVEL = "condition"


def group_means(values, codes: np.ndarray, n_groups: int, transform=None) -> np.ndarray:
    """Mean of ``transform(values)`` (or of ``values``) per group, ``(n_groups, genes)``,
    in row blocks.

    Parameters
    ----------
    values
        Cells x genes, dense or scipy sparse (transformed one block at a time).
    codes
        Group of each cell, ``0 .. n_groups - 1``.
    n_groups
        Number of groups; an empty group's mean is 0.
    transform
        Applied to each row block before summing, e.g. :func:`log_normalize`.
    """
    codes = np.asarray(codes)
    sums = np.zeros((n_groups, values.shape[1]))
    for start in range(0, values.shape[0], _ROW_BLOCK):
        block = values[start : start + _ROW_BLOCK]
        if transform is not None:
            block = transform(block)
        rows = codes[start : start + _ROW_BLOCK]
        indicator = sp.csr_matrix(
            (np.ones(len(rows)), (rows, np.arange(len(rows)))), shape=(n_groups, len(rows))
        )
        product = indicator @ block
        sums += product.toarray() if sp.issparse(product) else product
    sizes = np.bincount(codes, minlength=n_groups)
    return sums / np.maximum(sizes, 1)[:, None]


def group_log_means(counts, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Mean of ``log2(1e4 x / sum x + 1)`` per group, ``(n_groups, genes)``, from counts
    (:func:`group_means` with :func:`log_normalize`)."""
    return group_means(counts, codes, n_groups, transform=log_normalize)


def mean_log_expression(
    adata: ad.AnnData, groups: pd.Series, *, layer: str | None = None
) -> pd.DataFrame:
    """Mean of ``log2(1e4 x / sum x + 1)`` per group (groups x genes), in row blocks."""
    labels = pd.Categorical(np.asarray(groups, dtype=str))
    means = group_log_means(counts_matrix(adata, layer), labels.codes, len(labels.categories))
    return pd.DataFrame(means, index=labels.categories, columns=adata.var_names)


def context_differences(
    means: np.ndarray, groups: pd.MultiIndex, control_label: str
) -> tuple[pd.MultiIndex, np.ndarray]:
    """Per-context ATEs from per-group means: each condition minus its context's control.

    Parameters
    ----------
    means
        ``(..., groups, genes)``: group means, optionally with leading (draw) axes.
    groups
        The groups, a ``(context, condition)`` MultiIndex in the order of ``means``.
    control_label
        Condition label of the control cells.

    Returns
    -------
    (MultiIndex, ndarray)
        The ``(context, condition)`` rows (controls dropped, and conditions of contexts
        without control cells dropped) and their ATEs, ``(..., rows, genes)``.
    """
    contexts = groups.get_level_values(0)
    conditions = groups.get_level_values(1)
    control_of = {c: i for i, (c, t) in enumerate(groups) if t == control_label}
    rows = [i for i, (c, t) in enumerate(groups) if t != control_label and c in control_of]
    controls = [control_of[contexts[i]] for i in rows]
    index = pd.MultiIndex.from_arrays(
        [contexts[rows], conditions[rows]], names=[CONTEXT_LEVEL, CONDITION_LEVEL]
    )
    return index, np.take(means, rows, axis=-2) - np.take(means, controls, axis=-2)


def pool_contexts(values: np.ndarray, index: pd.MultiIndex) -> tuple[pd.Index, np.ndarray]:
    """Average per-context ATEs over the contexts in which each condition appears.

    Every context counts equally, whatever its number of cells, so that a pooled ATE does
    not depend on how cells happen to be spread over contexts.

    Returns
    -------
    (Index, ndarray)
        Conditions in order of first appearance and ``(..., conditions, genes)``.
    """
    conditions = pd.Index(index.get_level_values(CONDITION_LEVEL))
    order = pd.Index(pd.unique(conditions), name=CONDITION_LEVEL)
    codes = order.get_indexer(conditions)
    pooled = np.stack(
        [
            np.take(values, np.flatnonzero(codes == k), axis=-2).mean(axis=-2)
            for k in range(len(order))
        ],
        axis=-2,
    )
    return order, pooled


def data_ate(
    adata: ad.AnnData,
    perturbation_key: str,
    control_label: str,
    *,
    layer: str | None = None,
    context_key: str | None = None,
    by_context: bool = False,
) -> pd.DataFrame:
    """Observed ATE: mean log-normalised expression of each condition minus the controls'.

    Parameters
    ----------
    adata
        Cells with raw counts.
    perturbation_key, control_label
        Condition labels and the control's label.
    layer
        Layer of the counts (``None`` for ``X``).
    context_key
        Optional ``obs`` column of contexts (cell types). With it, each condition is
        compared with the controls of its own context, and the per-context ATEs are
        averaged over the contexts in which the condition appears (equal weights), unless
        ``by_context``. Without it, all cells are pooled.
    by_context
        Return one row per ``(context, condition)`` (requires ``context_key``).

    Returns
    -------
    DataFrame
        Conditions (control excluded) x genes; indexed by ``(context, condition)`` with
        ``by_context``.
    """
    if context_key is None:
        if by_context:
            raise ValueError("by_context needs a context_key")
        means = mean_log_expression(adata, adata.obs[perturbation_key], layer=layer)
        return means.drop(index=control_label) - means.loc[control_label]
    contexts = np.asarray(adata.obs[context_key], dtype=str)
    conditions = np.asarray(adata.obs[perturbation_key], dtype=str)
    groups = pd.MultiIndex.from_arrays([contexts, conditions]).unique().sort_values()
    codes = groups.get_indexer(pd.MultiIndex.from_arrays([contexts, conditions]))
    means = group_log_means(counts_matrix(adata, layer), codes, len(groups))
    index, values = context_differences(means, groups, control_label)
    if not by_context:
        index, values = pool_contexts(values, index)
    return pd.DataFrame(values, index=index, columns=adata.var_names)


def aligned_entries(
    predicted: pd.DataFrame, reference: pd.DataFrame, top_n: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Entries of two ATE tables aligned by label, flattened: ``(predicted, reference)``.

    With ``top_n`` only each row's ``top_n`` genes of largest ``|reference|`` are kept.
    """
    rows = predicted.index.intersection(reference.index)
    cols = predicted.columns.intersection(reference.columns)
    if len(rows) == 0 or len(cols) == 0:
        raise ValueError("the ATE tables share no perturbations or genes")
    p = predicted.loc[rows, cols].to_numpy()
    r = reference.loc[rows, cols].to_numpy()
    if top_n is not None:
        keep = top_gene_columns(r, top_n)
        p = np.take_along_axis(p, keep, axis=1)
        r = np.take_along_axis(r, keep, axis=1)
    return p.ravel(), r.ravel()


def top_gene_columns(reference: np.ndarray, top_n: int) -> np.ndarray:
    """Column indices of the ``top_n`` largest ``|reference|`` entries of each row."""
    return np.argsort(-np.abs(reference), axis=1, kind="stable")[:, :top_n]


def ate_pearson(
    predicted: pd.DataFrame, reference: pd.DataFrame, *, top_n: int | None = None
) -> float:
    """Pearson correlation of two ATE tables over perturbation x gene entries.

    Rows and columns are aligned by label. With ``top_n``, only the ``top_n`` genes per
    perturbation with the largest ``|reference|`` enter. NaN when either side is constant
    (a model that predicts no effect at all, for example).
    """
    p, r = aligned_entries(predicted, reference, top_n)
    if np.ptp(p) == 0 or np.ptp(r) == 0:
        return float("nan")
    return float(np.corrcoef(p, r)[0, 1])


def ate_r2(predicted: pd.DataFrame, reference: pd.DataFrame, *, top_n: int | None = None) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot`` of ``predicted`` for ``reference``.

    Unlike the squared Pearson correlation it penalises scale and offset errors: a model
    whose effects are all half as large as the data's has r = 1 but R² = 0.75. Rows,
    columns and ``top_n`` as in :func:`ate_pearson`.
    """
    p, r = aligned_entries(predicted, reference, top_n)
    total = np.sum((r - r.mean()) ** 2)
    return float(1.0 - np.sum((r - p) ** 2) / total) if total > 0 else float("nan")
