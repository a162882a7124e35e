"""get_normalized_expression: the decoder's library_size * softmax(...) without count noise."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sps
import torch
from helpers.simulations import tiny_simulation

import samsvae_plus as sp
from samsvae_plus.errors import InputError
from samsvae_plus.model.prediction_output import PREDICTION_UNS_KEY

QUICK = dict(max_epochs=2, dense_epochs=1, batch_size=32, n_particles=1, progress=False)


@pytest.fixture(scope="module")
def trained():
    adata = tiny_simulation()
    adata.var.index.name = "gene_symbol"
    adata.var["highly_variable"] = True
    model = sp.SAMSVAE(adata, latent_dim=3, guide="mean_field")
    model.train(**QUICK, seed=0)
    controls = adata[adata.obs["condition"] == "control"][:5].copy()
    return adata, model, controls


def _dense(matrix) -> np.ndarray:
    return matrix.toarray() if sps.issparse(matrix) else np.asarray(matrix)


def test_matches_a_hand_computation_through_the_decoder(trained):
    _, model, controls = trained
    guide, decoder = model.module["guide"], model.module["model"].likelihood.decoder
    counts = torch.as_tensor(_dense(controls.X), dtype=torch.float32)
    with torch.no_grad():
        # the mean-field guide's basal state reads the counts alone
        basal, _ = guide.basal_encoder(counts, counts.sum(dim=1))
        effect = torch.sigmoid(guide.mask_logits) * guide.embedding_loc
        genes = list(model.registry.perturbations)
        want = {}
        for label in ["P001", "P000+P001", "control"]:
            shift = sum(
                (effect[genes.index(g)] for g in label.split("+") if label != "control"),
                torch.zeros(3),
            )
            want[label] = (1e4 * torch.softmax(decoder.net(basal + shift), dim=-1)).numpy()
    got = model.get_normalized_expression(controls, ["P001", "P000+P001"], return_dataframe=True)
    for label, expected in want.items():
        np.testing.assert_allclose(got.loc[label].to_numpy(), expected, rtol=1e-4)
    # the perturbation changes the expression, so the comparison above is not trivial
    assert np.abs(want["P001"] - want["control"]).max() > 1e-3


def test_conditional_vae_decodes_its_state_with_the_dosage(tiny_adata):
    model = sp.ConditionalVAE(tiny_adata, latent_dim=3)
    model.train(**QUICK, seed=0)
    controls = tiny_adata[tiny_adata.obs["condition"] == "control"][:4].copy()
    counts = torch.as_tensor(_dense(controls.X), dtype=torch.float32)
    dosage = torch.zeros(4, len(model.actions))
    dosage[:, list(model.actions).index("P002")] = 1.0
    with torch.no_grad():
        z, _ = model.module["guide"].encoder(counts, counts.sum(dim=1), torch.zeros_like(dosage))
        logits = model.module["model"].likelihood.decoder.net(torch.cat([z, dosage], dim=-1))
        want = (counts.sum(dim=1, keepdim=True) * torch.softmax(logits, dim=-1)).numpy()
    got = model.get_normalized_expression(controls, ["P002"], library_size=None)
    np.testing.assert_allclose(_dense(got[got.obs["condition"] == "P002"].X), want, rtol=1e-4)


def test_observed_library_sizes_and_the_mean_of_predicted_counts(trained):
    _, model, controls = trained
    observed = _dense(controls.X).sum(axis=1)
    expression = model.get_normalized_expression(controls, ["P002"], library_size=None)
    np.testing.assert_allclose(_dense(expression.X).sum(axis=1), np.tile(observed, 2), rtol=1e-4)
    # averaged over posterior draws it is the mean of the counts predict samples
    many = model.get_normalized_expression(
        controls, ["P002"], library_size=None, give_mean=False, n_draws=200, seed=1
    )
    sampled = model.predict(controls, ["P002"], n_draws=200, seed=2, include_control=False)
    expected, counts = _dense(many.X)[:5].mean(axis=0), _dense(sampled.X).mean(axis=0)
    assert np.corrcoef(expected, counts)[0, 1] > 0.99
    np.testing.assert_allclose(counts.sum(), expected.sum(), rtol=0.05)


def test_output_layout(trained):
    _, model, controls = trained
    out = model.get_normalized_expression(controls, ["P001+P000"])
    assert out.n_obs == 10 and out.X.dtype == np.float32 and not sps.issparse(out.X)
    # the label as training writes it, then the control; source cells in order
    assert list(out.obs["condition"].astype(str)) == ["P000+P001"] * 5 + ["control"] * 5
    assert list(out.obs_names[:2]) == [f"{c}_P000+P001" for c in controls.obs_names[:2]]
    assert list(out.obs["control_cell"][:5]) == list(controls.obs_names)
    pd.testing.assert_frame_equal(out.var, controls.var)
    record = out.uns[PREDICTION_UNS_KEY]
    assert record["verb"] == "get_normalized_expression" and record["model"] == "SAMSVAE"
    assert record["library_size"] == 1e4 and record["give_mean"] is True
    frame = model.get_normalized_expression(controls, ["P001+P000"], return_dataframe=True)
    assert frame.index.names == ["condition", "control_cell"]
    assert frame.columns.name == "gene_symbol"
    np.testing.assert_array_equal(frame.to_numpy(), out.X)


def test_bad_requests_are_input_errors(trained):
    _, model, controls = trained
    with pytest.raises(InputError, match="n_draws applies to give_mean=False"):
        model.get_normalized_expression(controls, n_draws=3)
    with pytest.raises(InputError, match="library_size"):
        model.get_normalized_expression(controls, library_size=-1.0)
    with pytest.raises(InputError, match="never saw perturbed"):
        model.get_normalized_expression(controls, ["NOPE"])
