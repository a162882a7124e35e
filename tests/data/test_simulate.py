"""The simulator: reproducible, and its ground truth agrees with the data it generates."""

import numpy as np
import pytest
from helpers.simulations import SMALL

import samsvae_plus as sp
from samsvae_plus.evaluate.ate import ate_pearson, data_ate


@pytest.mark.slow
def test_same_seed_same_data():
    a = sp.datasets.simulate(**SMALL, seed=4)
    b = sp.datasets.simulate(**SMALL, seed=4)
    assert (a.X != b.X).nnz == 0
    np.testing.assert_array_equal(a.uns["simulation"]["true_ate"], b.uns["simulation"]["true_ate"])
    assert (a.X != sp.datasets.simulate(**SMALL, seed=5).X).nnz > 0


def test_ground_truth_structure(small_adata):
    truth = small_adata.uns["simulation"]
    mask, embedding = truth["mask"].astype(bool), truth["embedding"]
    assert mask.any(axis=1).all(), "every perturbation acts on at least one dimension"
    assert (embedding[~mask] == 0).all() and (np.abs(embedding[mask]) > 0).all()
    counts = small_adata.obs["condition"].value_counts()
    assert counts["control"] == SMALL["n_control_cells"]
    assert sum("+" in c for c in counts.index) == SMALL["n_combinations"]
    assert set(small_adata.obs["cell_type"]) == {"ctx0", "ctx1"}
    assert np.issubdtype(small_adata.X.dtype, np.integer)


def test_true_ate_matches_the_observed_effects(small_adata):
    observed = data_ate(small_adata, "condition", "control")
    truth = small_adata.uns["simulation"]["true_ate"]
    assert ate_pearson(observed, truth) > 0.9
    # and is not trivially close to zero
    assert np.abs(truth.to_numpy()).max() > 1
