"""The ATE in the data's space: cells drawn at real controls' library sizes, log1p-normalised
as the data are. It must agree with what the model's own counterfactual cells give when
they are normalised like data, and differ from the model-space ATE when cells are shallow."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sps

import samsvae_plus as sp

pytestmark = pytest.mark.slow


def _log1p_means(adata, key):
    counts = sps.csr_matrix(adata.X, dtype=np.float64)
    totals = np.asarray(counts.sum(axis=1)).ravel()
    values = sps.diags(1e4 / totals) @ counts
    values.data = np.log1p(values.data)
    labels = np.asarray(adata.obs[key], dtype=str)
    return {c: np.asarray(values[labels == c].mean(axis=0)).ravel() for c in np.unique(labels)}


@pytest.fixture(scope="module")
def shallow_model():
    # shallow cells (median 150 UMIs) make log1p of counts far from the log of their mean
    adata = sp.datasets.simulate(
        n_perturbations=4,
        n_contexts=1,
        n_genes=40,
        latent_dim=3,
        n_combinations=0,
        cells_per_condition=40,
        n_control_cells=150,
        library_size_median=150.0,
        effect_size=2.0,
        ate_cells=20,
        seed=4,
    )
    sp.setup_anndata(adata, "condition", "control")
    model = sp.SAMSVAE(adata, latent_dim=3, guide="correlated_basal")
    model.train(max_epochs=60, dense_epochs=20, n_particles=1, lr=3e-3, progress=False, seed=0)
    return adata, model


def test_data_space_ate_matches_the_model_counterfactuals_normalised_as_data(shallow_model):
    adata, model = shallow_model
    controls = adata[adata.obs["condition"] == "control"]
    conditions = ["P000", "P001", "P002", "P003"]
    ate = model.average_treatment_effect(
        conditions, space="data", adata_controls=controls, n_draws=30, n_cells=150
    )
    # the model's own control cells too, not the observed ones (the factual default)
    predicted = model.predict(
        controls, ["control", *conditions], n_draws=30, seed=5, factual="model"
    )
    means = _log1p_means(predicted, "condition")
    reference = np.stack([means[c] - means["control"] for c in conditions])
    assert np.corrcoef(ate.to_numpy().ravel(), reference.ravel())[0, 1] > 0.97
    assert np.linalg.norm(ate.to_numpy()) == pytest.approx(np.linalg.norm(reference), rel=0.1)


def test_data_space_differs_from_model_space_for_shallow_cells(shallow_model):
    adata, model = shallow_model
    data = model.average_treatment_effect(space="data", n_draws=10)
    fixed = model.average_treatment_effect(space="model", basal="encoder", n_draws=10)
    # log2 vs natural log alone is a factor ln 2; at 150 UMIs a single count is a jump of
    # log1p(67), so the same effect moves the data's scale by far more than that factor
    ratio = np.linalg.norm(data.to_numpy()) / (np.linalg.norm(fixed.to_numpy()) * np.log(2))
    assert ratio > 1.2


def test_data_space_refuses_prior_basal_states(shallow_model):
    _, model = shallow_model
    with pytest.raises(sp.InputError, match="space='data'"):
        model.average_treatment_effect(space="data", basal="prior")
    with pytest.raises(sp.InputError, match="space"):
        model.average_treatment_effect(space="counts")
