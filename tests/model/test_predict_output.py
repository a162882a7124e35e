"""predict's output: controls included, factual rows observed, labels as training writes
them, cells named by their source, var kept and the run recorded."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from helpers.simulations import tiny_simulation

import samsvae_plus as sp
from samsvae_plus.model.prediction_output import PREDICTION_UNS_KEY

QUICK = dict(max_epochs=2, dense_epochs=1, batch_size=32, n_particles=1, progress=False)


@pytest.fixture(scope="module")
def trained():
    adata = tiny_simulation()
    model = sp.SAMSVAE(adata, latent_dim=3)
    model.train(**QUICK, seed=0)
    return adata, model


def _combination(model) -> str:
    return next(c for c in model.registry.conditions if "+" in c)


def test_the_control_is_added_after_the_requested_labels(trained):
    adata, model = trained
    controls = adata[adata.obs["condition"] == "control"][:6].copy()
    alone = model.predict(controls, ["P001"], n_draws=2, seed=4, include_control=False)
    assert list(alone.obs["condition"].astype(str)) == ["P001"] * 12
    out = model.predict(controls, ["P001"], n_draws=2, seed=4)
    assert list(out.obs["condition"].astype(str)) == (["P001"] * 6 + ["control"] * 6) * 2
    # given explicitly, the control keeps its place
    first = model.predict(controls, ["control", "P001"], seed=4)
    assert list(first.obs["condition"].astype(str)) == ["control"] * 6 + ["P001"] * 6
    # and by default it leads every condition seen in training
    every = model.predict(controls, seed=4, include_control=False)
    assert "control" not in set(every.obs["condition"])
    default = model.predict(controls, seed=4).obs["condition"].astype(str)
    assert list(dict.fromkeys(default)) == ["control", *every.obs["condition"].cat.categories]


def test_a_cells_own_condition_keeps_its_observed_counts(trained):
    adata, model = trained
    # control cells and cells of one perturbation, as source cells with their labels
    sources = adata[adata.obs["condition"].isin(["control", "P002"])][::3].copy()
    own = sources.obs["condition"].astype(str).to_numpy()
    observed = model.predict(sources, ["P002", "P003"], seed=1)
    sampled = model.predict(sources, ["P002", "P003"], seed=1, factual="model")
    for label in ("P002", "P003", "control"):
        rows = (observed.obs["condition"] == label).to_numpy()
        factual = own == label
        got, drawn = observed.X[rows].toarray(), sampled.X[rows].toarray()
        np.testing.assert_array_equal(got[factual], sources.X[factual].toarray())
        # every other row is the same draw either way
        np.testing.assert_array_equal(got[~factual], drawn[~factual])
        if factual.any():
            assert not np.array_equal(drawn[factual], got[factual])
    assert observed.uns[PREDICTION_UNS_KEY]["factual"] == "observed"
    with pytest.raises(sp.InputError, match="factual='counts' is not available"):
        model.predict(sources, ["P002"], factual="counts")


def test_labels_are_written_as_training_writes_them(trained):
    adata, model = trained
    controls = adata[adata.obs["condition"] == "control"][:3].copy()
    combination = _combination(model)
    first, second = combination.split("+")
    reversed_label = f"{second}+{first}"
    unseen = "P004+P003" if "P003+P004" not in model.registry.conditions else "P004+P000"
    out = model.predict(controls, [reversed_label, unseen, f"control+{first}", combination], seed=0)
    want = [combination, "+".join(sorted(unseen.split("+"))), first, "control"]
    assert list(out.obs["condition"].cat.categories.sort_values()) == sorted(want)
    assert list(dict.fromkeys(out.obs["condition"].astype(str))) == want
    # matched labels draw exactly what the training label draws
    direct = model.predict(controls, [combination], seed=0, include_control=False)
    matched = model.predict(controls, [reversed_label], seed=0, include_control=False)
    assert (direct.X != matched.X).nnz == 0


def test_svae_plus_finds_the_training_condition_of_a_reversed_combination(tiny_adata):
    model = sp.SVAEPlus(tiny_adata, latent_dim=3)
    model.train(**QUICK, seed=0)
    combination = _combination(model)
    first, second = combination.split("+")
    controls = tiny_adata[tiny_adata.obs["condition"] == "control"][:3].copy()
    out = model.predict(controls, [f"{second}+{first}"], seed=0)
    assert set(out.obs["condition"]) == {combination, "control"}


def test_names_var_and_record_survive_an_h5ad_round_trip(trained, tmp_path):
    adata, model = trained
    controls = adata[adata.obs["condition"] == "control"][:4].copy()
    controls.var.index.name = "gene_symbol"
    controls.var["gene_id"] = [f"ENSG{i:05d}" for i in range(controls.n_vars)]
    out = model.predict(controls, ["P001"], n_draws=2, seed=7)
    cell = controls.obs_names[1]
    assert out.obs_names[1] == f"{cell}_P001_0" and out.obs_names[-1].endswith("_control_1")
    assert out.obs_names.is_unique
    pd.testing.assert_frame_equal(out.var, controls.var)
    assert out.uns[PREDICTION_UNS_KEY] == {
        "verb": "predict",
        "model": "SAMSVAE",
        "version": sp.__version__,
        "perturbation_key": "condition",
        "control_label": "control",
        "seed": 7,
        "n_draws": 2,
        "factual": "observed",
    }
    out.write_h5ad(tmp_path / "pred.h5ad")
    back = ad.read_h5ad(tmp_path / "pred.h5ad")
    assert list(back.obs_names) == list(out.obs_names)
    pd.testing.assert_frame_equal(back.var, out.var)
    assert dict(back.uns[PREDICTION_UNS_KEY]) == out.uns[PREDICTION_UNS_KEY]
