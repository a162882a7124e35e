"""Posterior samples leave the model in standard formats: ArviZ, and AnnData that the
challenge scorer takes as it is."""

import warnings

import numpy as np
import pytest
import torch

import samsvae_plus as sp
from samsvae_plus.inference import to_arviz


@pytest.fixture(scope="module")
def idata(trained_model):
    return trained_model.to_inference_data(
        n_draws=10, include_ate=True, perturbations=["P001", "P002+P006"], n_cells=50, seed=3
    )


def test_inference_data_holds_named_draws_of_the_globals(trained_model, idata):
    post = idata["posterior"] if not hasattr(idata, "posterior") else idata.posterior
    assert post["embedding"].dims == ("chain", "draw", "perturbation", "latent")
    assert list(post["embedding"].coords["perturbation"].values) == list(
        trained_model.registry.perturbations
    )
    assert post["ate"].dims == ("chain", "draw", "condition", "gene")
    probs = trained_model.mask_probabilities().to_numpy()
    np.testing.assert_allclose(post["mask_prob"].values[1, 4], probs, rtol=1e-6)
    # embedding draws scatter around the guide's means with the guide's scales
    guide = trained_model.module["guide"]
    loc = guide.embedding_loc.detach().numpy()
    scale = torch.nn.functional.softplus(guide.embedding_raw_scale).detach().numpy()
    draws = post["embedding"].values.reshape(-1, *loc.shape)
    z = (draws.mean(axis=0) - loc) / (scale / np.sqrt(len(draws)))
    assert np.abs(z).max() < 5
    # the ATE draws are the joint draws of average_treatment_effect with the same seed
    _, ate_draws = trained_model.average_treatment_effect(
        ["P001", "P002+P006"], n_draws=20, n_cells=50, seed=3, return_draws=True
    )
    np.testing.assert_array_equal(post["ate"].values.reshape(ate_draws.shape), ate_draws)


def test_inference_data_passes_az_summary(idata):
    az = pytest.importorskip("arviz")
    with warnings.catch_warnings():
        # diagnostics of constant variables (mask_prob, masks that are never on) are NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        summary = az.summary(idata)
    assert "embedding[P000, z0]" in summary.index
    assert len(summary) == 3 * 20 * 5 + 2 * 200
    assert summary.loc["ate[P001, G0000]", "mean"] == pytest.approx(
        float(idata.posterior["ate"].sel(condition="P001", gene="G0000").mean()), abs=1e-3
    )
    r_hat = summary.filter(like="embedding", axis=0)["r_hat"]
    assert r_hat.max() < 1.5  # independent draws split into two chains agree


def test_arviz_1_is_called_with_one_dict_of_groups(monkeypatch):
    calls = {}

    def from_dict(data, *, coords=None, dims=None, attrs=None):  # ArviZ 1.x signature
        calls.update(data=data, coords=coords, dims=dims, attrs=attrs)
        return "tree"

    import arviz

    monkeypatch.setattr(arviz, "from_dict", from_dict)
    result = to_arviz.build_inference_data(
        {"embedding": np.zeros((1, 2, 3, 4))},
        {"perturbation": list("abc"), "latent": list("wxyz"), "gene": ["unused"]},
        attrs={"model": "X"},
    )
    assert result == "tree"
    assert list(calls["data"]) == ["posterior"]
    assert calls["dims"] == {"embedding": ["perturbation", "latent"]}
    assert set(calls["coords"]) == {"perturbation", "latent"}
    assert calls["attrs"] == {"posterior": {"model": "X"}}


def test_predict_output_goes_straight_into_the_challenge_scorer(trained_model, small_adata):
    real = small_adata[trained_model.split.test].copy()
    controls = real[real.obs["condition"] == "control"].copy()
    # the prediction has the labels, genes and control cells the scorer checks for
    pred = trained_model.predict(controls, sorted(set(real.obs["condition"])), seed=0)
    result = sp.metrics.challenge_score(
        pred, real, perturbation_key="condition", control_label="control", reference=small_adata
    )
    # far better than chance at telling perturbations apart (0 is random, 1 perfect), and
    # better than the challenge's cell-mean baseline
    assert result.mean["discrimination_score_l1_centered"] > 0.6
    assert result.score["avg_score"] > 0
    # by default predict and sample cover the control and every condition
    sampled = trained_model.sample(n_cells=20, library_size=2000, seed=0)
    assert set(sampled.obs["condition"]) == set(small_adata.obs["condition"])
    result = sp.metrics.challenge_score(
        sampled, small_adata, perturbation_key="condition", control_label="control"
    )
    assert result.mean["discrimination_score_l1_centered"] > 0.6


def test_sampling_in_chunks_draws_the_same_distribution_stored_sparse(trained_model):
    def mean_expression(batch_size):
        cells = trained_model.sample(
            ["P001"], n_cells=600, library_size=1000.0, seed=1, batch_size=batch_size
        )
        assert cells.X.format == "csr" and cells.X.dtype == np.float32
        # contexts alternate over the cells, across chunk borders too
        assert (cells.obs["cell_type"].cat.codes.to_numpy() == np.arange(600) % 2).all()
        return np.asarray(cells.X.mean(axis=0)).ravel()

    whole, chunked = mean_expression(10_000), mean_expression(64)
    assert not np.array_equal(whole, chunked)  # different draws ...
    # ... of the same distribution: per-gene means of 600 cells agree within their noise
    relative = np.abs(whole - chunked) / np.maximum(whole, 0.5)
    assert np.median(relative) < 0.1 and np.corrcoef(whole, chunked)[0, 1] > 0.99
