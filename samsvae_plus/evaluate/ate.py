"""Average treatment effects (ATE) in data and their agreement with a model."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from samsvae_plus.data.registry import counts_matrix
from samsvae_plus.data.transforms import log_normalize

_ROW_BLOCK = 4096


def mean_log_expression(
    adata: ad.AnnData, groups: pd.Series, *, layer: str | None = None
) -> pd.DataFrame:
    """Mean of ``log2(1e4 x / sum x + 1)`` per group (groups x genes), in row blocks."""
    counts = counts_matrix(adata, layer)
    labels = pd.Categorical(np.asarray(groups, dtype=str))
    sums = np.zeros((len(labels.categories), adata.n_vars))
    for start in range(0, adata.n_obs, _ROW_BLOCK):
        block = log_normalize(counts[start : start + _ROW_BLOCK])
        np.add.at(sums, labels.codes[start : start + _ROW_BLOCK], block)
    sizes = np.bincount(labels.codes, minlength=len(labels.categories))
    return pd.DataFrame(sums / sizes[:, None], index=labels.categories, columns=adata.var_names)


def data_ate(
    adata: ad.AnnData,
    perturbation_key: str,
    control_label: str,
    *,
    layer: str | None = None,
) -> pd.DataFrame:
    """Observed ATE: mean log-normalised expression of each condition minus the controls'.

    Returns conditions (control excluded) x genes.
    """
    means = mean_log_expression(adata, adata.obs[perturbation_key], layer=layer)
    return means.drop(index=control_label) - means.loc[control_label]


def ate_pearson(
    predicted: pd.DataFrame, reference: pd.DataFrame, *, top_n: int | None = None
) -> float:
    """Pearson correlation of two ATE tables over perturbation x gene entries.

    Rows and columns are aligned by label. With ``top_n``, only the ``top_n`` genes per
    perturbation with the largest ``|reference|`` enter.
    """
    rows = predicted.index.intersection(reference.index)
    cols = predicted.columns.intersection(reference.columns)
    if len(rows) == 0 or len(cols) == 0:
        raise ValueError("the ATE tables share no perturbations or genes")
    p = predicted.loc[rows, cols].to_numpy()
    r = reference.loc[rows, cols].to_numpy()
    if top_n is not None:
        keep = np.argsort(-np.abs(r), axis=1)[:, :top_n]
        p = np.take_along_axis(p, keep, axis=1)
        r = np.take_along_axis(r, keep, axis=1)
    return float(np.corrcoef(p.ravel(), r.ravel())[0, 1])
