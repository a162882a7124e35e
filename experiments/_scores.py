"""The metrics the tables share: test IWELBO, mask accuracy and ATE Pearson.

On the simulator the reference is its truth (true masks, true ATE pooled over contexts);
on real data it is the data: pathway labels of the perturbed genes, and the ATE of the
held-out cells in each cell type (model and data are compared context by context, since
pooling would mix K562's CRISPRa with the glioma lines' CRISPRi).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import anndata as ad
import numpy as np
import pandas as pd
from _data import CONTEXT, CONTROL, KEY

import samsvae_plus as sp
from samsvae_plus.evaluate.ate import ate_pearson, data_ate
from samsvae_plus.evaluate.masks import mask_recovery
from samsvae_plus.evaluate.pathway_report import mask_pathway_report

TOP_N = 20


def data_space_ate(
    model, train: ad.AnnData, conditions, *, n_draws: int, seed: int, by_context: bool = False
) -> pd.DataFrame:
    """The model's ATE of ``conditions`` in the data's space, ``log1p(1e4 x / total)``,
    drawn at the observed depths of ``train``'s control cells (the cells a baseline built
    from ``train`` would subtract)."""
    return model.average_treatment_effect(
        conditions,
        by_context=by_context,
        space="data",
        adata_controls=train[train.obs[KEY] == CONTROL],
        n_draws=n_draws,
        seed=seed,
    )


def observed_arm_ate(
    model,
    train: ad.AnnData,
    conditions,
    *,
    n_draws: int,
    seed: int,
    n_cells: int = 200,
    by_context: bool = False,
) -> pd.DataFrame:
    """The model's predicted cells of ``conditions`` minus ``train``'s *observed* control
    cells, both in ``log1p(1e4 x / total)``: a prediction scored as the package's scorer
    and cell-eval score a prediction file, with the control arm every baseline built from
    ``train`` subtracts. The cells are drawn by :meth:`predict` (``n_draws`` copies) from up
    to ``n_cells`` of each context's training controls, at their library sizes."""
    controls = train[train.obs[KEY] == CONTROL]
    rng = np.random.default_rng(seed)
    contexts = controls.obs[CONTEXT].to_numpy(dtype=str)
    sources = np.sort(
        np.concatenate(
            [rng.permutation(np.flatnonzero(contexts == c))[:n_cells] for c in np.unique(contexts)]
        )
    )
    predicted = model.predict(
        controls[sources].copy(),
        list(conditions),
        n_draws=n_draws,
        seed=seed,
        include_control=False,
    )
    observed = ad.AnnData(X=controls.X, obs=controls.obs[[KEY, CONTEXT]], var=controls.var)
    cells = ad.concat([predicted[:, controls.var_names], observed], index_unique="-")
    cells.obs[KEY] = cells.obs[KEY].astype(str)
    return data_ate(cells, KEY, CONTROL, context_key=CONTEXT, by_context=by_context)


def test_iwelbo(model, cells: ad.AnnData, n_samples: int, seed: int) -> float:
    """Mean IWELBO of ``cells``, nats per cell."""
    return float(np.mean(model.iwelbo(cells, n_samples=n_samples, seed=seed, progress=False)))


def mask_probabilities(model) -> pd.DataFrame | None:
    """The model's mask probabilities, or None for a model without masks."""
    try:
        return model.mask_probabilities()
    except sp.InputError:
        return None


def shared_sets(
    sets: Mapping[str, Sequence[str]], genes: Sequence[str], min_members: int = 2
) -> dict[str, Sequence[str]]:
    """The sets holding at least ``min_members`` of ``genes``, with their full gene lists.

    The pathway report ignores every other set, so passing only these gives the same
    report; it saves scanning thousands of GO terms with pandas for every model.
    """
    wanted = set(map(str, genes))
    return {n: g for n, g in sets.items() if len(wanted.intersection(g)) >= min_members}


def mask_scores(
    model,
    truth: dict | None,
    collections: Mapping[str, Mapping[str, Sequence[str]]],
    n_permutations: int,
    seed: int,
) -> dict:
    """``mask_f1`` against the simulator's masks, or ``pathway_accuracy_<collection>``
    (leave-one-out kNN) on real data; NaN for a model without masks."""
    probabilities = mask_probabilities(model)
    if truth is not None:
        if probabilities is None:
            return {"mask_f1": np.nan}
        learned = probabilities.loc[list(truth["perturbations"])]
        return {"mask_f1": mask_recovery(truth["mask"], learned).f1}
    scores = {}
    for name, sets in collections.items():
        key = f"pathway_accuracy_{name}"
        if probabilities is None:
            scores[key] = np.nan
            continue
        report = mask_pathway_report(
            probabilities,
            shared_sets(sets, probabilities.index),
            collection=name,
            n_permutations=n_permutations,
            seed=seed,
        )
        scores[key] = report.accuracy.accuracy
    return scores


def reference_ate(adata: ad.AnnData, cells: np.ndarray, truth: dict | None) -> pd.DataFrame:
    """The ATE a prediction is scored against: the simulator's true ATE, or the data ATE
    of ``cells`` (which must include control cells) by (context, condition)."""
    if truth is not None:
        return truth["true_ate"]
    return data_ate(adata[np.sort(cells)], KEY, CONTROL, context_key=CONTEXT, by_context=True)


def model_ate(
    model,
    conditions: Sequence[str] | None,
    truth: dict | None,
    *,
    n_draws: int,
    n_cells: int,
    seed: int,
    context: str | None = None,
) -> pd.DataFrame:
    """The model's ATE of ``conditions`` (None: every condition it knows), indexed like
    :func:`reference_ate`."""
    return model.average_treatment_effect(
        None if conditions is None else list(conditions),
        n_draws=n_draws,
        n_cells=n_cells,
        seed=seed,
        by_context=truth is None,
        context=context,
    )


def ate_scores(predicted: pd.DataFrame, reference: pd.DataFrame, prefix: str = "ate") -> dict:
    """Pearson over all genes and over each perturbation's top 20 genes of the reference."""
    return {
        f"{prefix}_pearson": ate_pearson(predicted, reference),
        f"{prefix}_pearson_top{TOP_N}": ate_pearson(predicted, reference, top_n=TOP_N),
    }
