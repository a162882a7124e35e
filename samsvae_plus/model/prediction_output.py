"""The AnnData that ``predict`` and ``get_normalized_expression`` return.

One row per (draw, condition, source cell), in that order, named
``SOURCE_CONDITION_DRAW`` (``SOURCE_CONDITION`` without draws), so that a row says where
it came from; ``var`` is the source AnnData's own, and ``uns`` records what made it.
"""

from __future__ import annotations

from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd

from samsvae_plus._version import __version__
from samsvae_plus.data.checked import CheckedCells, match_training_labels
from samsvae_plus.data.registry import Registry

# uns key of the record; not the registry's "samsvae_plus", which setup_anndata owns.
PREDICTION_UNS_KEY = "samsvae_plus_prediction"
# What predict writes for a cell whose target is its own condition (see predict).
FACTUAL_SOURCES = ("observed", "model")


def source_cell_obs(
    cells: CheckedCells, labels: Sequence[str], n_draws: int | None
) -> pd.DataFrame:
    """``obs`` of the output: the condition (under the registry's perturbation key), the
    source cell, the draw (unless ``n_draws`` is None) and the source cell's context."""
    registry = cells.registry
    n, repeats = cells.n_cells, 1 if n_draws is None else n_draws
    key = registry.perturbation_key
    source = np.asarray(cells.obs_names).astype(str)
    obs = pd.DataFrame(
        {
            key: np.repeat(np.tile(np.asarray(labels, dtype=object), repeats), n),
            "control_cell": np.tile(source, repeats * len(labels)),
        }
    )
    names = obs["control_cell"] + "_" + obs[key].astype(str)
    if n_draws is not None:
        obs["draw"] = np.repeat(np.arange(n_draws), n * len(labels))
        names = names + "_" + obs["draw"].astype(str)
    if registry.context_key is not None:
        obs[registry.context_key] = np.tile(
            np.asarray(registry.contexts)[cells.context], repeats * len(labels)
        )
    obs.index = pd.Index(names.to_numpy(), dtype=object)
    return with_categories(obs)


def with_categories(obs: pd.DataFrame) -> pd.DataFrame:
    """``obs`` with its string columns as categoricals, as AnnData writes them."""
    for column in obs.columns:
        if obs[column].dtype == object:
            obs[column] = pd.Categorical(obs[column])
    return obs


def output_adata(X, obs: pd.DataFrame, source: ad.AnnData, record: dict) -> ad.AnnData:
    """The returned AnnData: ``source``'s ``var`` (index name and columns kept) and
    ``record`` in ``uns[PREDICTION_UNS_KEY]``."""
    return ad.AnnData(X=X, obs=obs, var=source.var.copy(), uns={PREDICTION_UNS_KEY: record})


def run_record(model, verb: str, **settings) -> dict:
    """What made an output: the verb, the model class, the package version, the labels'
    keys and the verb's settings (h5ad-writable values only: no None)."""
    registry = model.registry
    return {
        "verb": verb,
        "model": type(model).__name__,
        "version": __version__,
        "perturbation_key": registry.perturbation_key,
        "control_label": registry.control_label,
        **settings,
    }


def factual_rows(cells: CheckedCells, labels: Sequence[str]) -> np.ndarray:
    """Cells x conditions: whether the condition is the cell's own, compared as training
    labels (see :func:`~samsvae_plus.data.checked.match_training_labels`), so that
    ``"B+A"`` is the condition of a cell labelled ``"A+B"``."""
    registry: Registry = cells.registry
    unique, inverse = np.unique(cells.conditions, return_inverse=True)
    own = np.asarray([match_training_labels([str(u)], registry)[0] for u in unique], dtype=object)
    return own[inverse.ravel()][:, None] == np.asarray(labels, dtype=object)[None, :]
