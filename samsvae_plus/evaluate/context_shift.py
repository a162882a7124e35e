"""Baselines of the unseen-cell-type task, in log-normalised space.

The task (``data.splits.held_out_context``): predict a context's perturbations from its
control cells, having seen the perturbations only in other contexts. The scorer compares
predictions and real cells in one space, ``log1p(1e4 x / total)``
(:func:`log_normalised`), for real cells, model predictions and baselines alike.

The *context-mean shift* baseline adds to each control cell of the new context the
perturbation's mean shift in the training contexts: for each training context where the
perturbation and controls were seen, the difference of mean log-normalised expression,
averaged over those contexts with equal weight (``evaluate.ate.data_ate``). It assumes
that a perturbation moves every cell type by the same amount; a model that beats it has
learned how the effect depends on the cell's state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from samsvae_plus.data.registry import counts_matrix
from samsvae_plus.data.transforms import ENCODER_TARGET_SUM, log_normalize
from samsvae_plus.evaluate.ate import data_ate, group_means


def log_normalised(adata: ad.AnnData, *, layer: str | None = None) -> ad.AnnData:
    """A copy of ``adata`` (``obs`` kept) with ``X = log1p(1e4 x / total)`` as float32 CSR."""
    values = log_normalize(counts_matrix(adata, layer), ENCODER_TARGET_SUM) * math.log(2)
    return ad.AnnData(
        X=sp.csr_matrix(values.astype(np.float32)), obs=adata.obs.copy(), var=adata.var.copy()
    )


def context_mean_shift(
    train: ad.AnnData,
    controls: ad.AnnData,
    conditions: Sequence[str],
    *,
    perturbation_key: str,
    context_key: str,
    control_label: str,
    layer: str | None = None,
) -> ad.AnnData:
    """Every control cell under every condition, shifted by the condition's mean effect in
    the training contexts (log-normalised, clipped at 0; the control keeps its values).

    Parameters
    ----------
    train
        Training cells (raw counts) of the other contexts, with their controls.
    controls
        Control cells (raw counts) of the new context.
    conditions
        Condition labels to predict; the control label may be among them.

    Returns
    -------
    AnnData
        ``log1p(1e4 x / total)`` values, ``obs[perturbation_key]`` and ``control_cell``,
        conditions in the given order.
    """
    shifts = data_ate(
        train, perturbation_key, control_label, layer=layer, context_key=context_key
    ) * math.log(2)  # log2(1 + v) * ln 2 = log1p(v): the ATE on the log1p scale
    missing = [c for c in conditions if c != control_label and c not in shifts.index]
    if missing:
        raise ValueError(f"conditions without training cells: {missing}")
    base = log_normalised(controls, layer=layer).X.toarray()
    blocks, labels = [], []
    for condition in conditions:
        shift = 0.0 if condition == control_label else shifts.loc[condition].to_numpy()
        blocks.append(np.maximum(base + shift, 0.0).astype(np.float32))
        labels += [condition] * controls.n_obs
    obs = pd.DataFrame(
        {
            perturbation_key: pd.Categorical(labels),
            "control_cell": np.tile(np.asarray(controls.obs_names), len(conditions)),
        },
        index=pd.Index([f"shift{i}" for i in range(len(labels))]),
    )
    return ad.AnnData(X=sp.csr_matrix(np.concatenate(blocks)), obs=obs, var=controls.var.copy())


def log_ate(log_adata: ad.AnnData, perturbation_key: str, control_label: str) -> pd.DataFrame:
    """ATE of already log-normalised cells: each condition's mean minus the controls'
    (conditions x genes, control excluded). For predictions and baselines that come
    as ``log1p`` values; :func:`~samsvae_plus.evaluate.ate.data_ate` takes counts."""
    labels = pd.Categorical(np.asarray(log_adata.obs[perturbation_key], dtype=str))
    means = pd.DataFrame(
        group_means(log_adata.X, labels.codes, len(labels.categories)),
        index=labels.categories,
        columns=log_adata.var_names,
    )
    return means.drop(index=control_label) - means.loc[control_label]
