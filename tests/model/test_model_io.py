"""Save/load round trips, safe loading, and the posterior verbs' outputs."""

import json
import pickle

import numpy as np
import pytest
import scipy.sparse as sps
import torch

import samsvae_plus as sp
from samsvae_plus.errors import InputError
from samsvae_plus.inference.model_files import METADATA_FILE, PARAMS_FILE


@pytest.fixture(scope="module")
def saved(trained_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "saved"
    trained_model.save(path)
    return path


def controls(adata, n=30):
    return adata[adata.obs["condition"] == "control"][:n].copy()


def test_round_trip_restores_predictions_for_the_same_seed(trained_model, saved, small_adata):
    loaded = sp.SAMSVAE.load(saved, adata=small_adata)
    cells = controls(small_adata)
    conditions = ["P001", "P002+P007", "control"]
    before = trained_model.predict(cells, conditions, seed=5)
    after = loaded.predict(cells, conditions, seed=5)
    assert (before.X != after.X).nnz == 0
    assert loaded.registry == trained_model.registry
    assert loaded.split.to_dict() == trained_model.split.to_dict()
    assert loaded.history.to_dict() == trained_model.history.to_dict()
    for name, value in trained_model.module.state_dict().items():
        assert torch.equal(value.cpu(), loaded.module.state_dict()[name])


def test_load_without_data_still_predicts(saved, small_adata):
    loaded = sp.SAMSVAE.load(saved)
    assert loaded.adata is None
    # P003 and the control, which predict adds
    assert loaded.predict(controls(small_adata, 5), ["P003"]).n_obs == 10


def test_predict_output_layout(trained_model, small_adata):
    cells = controls(small_adata, 12)
    out = trained_model.predict(cells, ["P001", "P004+P005"], n_draws=2, seed=0)
    # two conditions and the control, which predict adds after them
    assert out.n_obs == 12 * 3 * 2 and list(out.var_names) == list(small_adata.var_names)
    assert list(out.obs["condition"].cat.categories) == ["P001", "P004+P005", "control"]
    assert sps.isspmatrix_csr(out.X) and out.X.dtype == np.float32
    np.testing.assert_array_equal(out.X.data, np.round(out.X.data))
    assert out.obs.groupby(["condition", "draw"], observed=True).size().eq(12).all()
    assert set(out.obs["control_cell"]) == set(cells.obs_names)
    np.testing.assert_array_equal(
        out.obs["cell_type"].to_numpy()[:12], cells.obs["cell_type"].to_numpy()
    )


def test_predict_refuses_unknown_perturbations(trained_model, small_adata):
    with pytest.raises(InputError, match="never saw perturbed"):
        trained_model.predict(controls(small_adata, 3), ["NOT_A_GENE"])


def test_predicted_library_sizes_follow_the_source_cells(trained_model, small_adata):
    cells = controls(small_adata, 40)
    # sampled by the model, not the observed counts a control cell keeps by default
    out = trained_model.predict(cells, ["control"], seed=1, factual="model")
    source = np.asarray(cells.X.sum(axis=1)).ravel()
    predicted = np.asarray(out.X.sum(axis=1)).ravel()
    assert np.corrcoef(np.log(source), np.log(predicted))[0, 1] > 0.8


def test_ate_of_a_condition_against_itself_is_exactly_zero(trained_model):
    # common random numbers: identical basal states and noise cancel exactly
    ate = trained_model.average_treatment_effect(["control", "P001"], n_draws=2, n_cells=50)
    assert (ate.loc["control"] == 0).all()
    assert ate.loc["P001"].abs().max() > 0.1


def test_sample_draws_cells_of_the_requested_context(trained_model):
    out = trained_model.sample(
        ["control", "P001"], n_cells=25, context="ctx1", library_size=2000, seed=0
    )
    assert out.n_obs == 50 and set(out.obs["cell_type"]) == {"ctx1"}
    np.testing.assert_allclose(np.asarray(out.X.sum(axis=1)).mean(), 2000, rtol=0.15)


def test_version_mismatch_is_refused(saved, tmp_path):
    copy = tmp_path / "old"
    copy.mkdir()
    (copy / PARAMS_FILE).write_bytes((saved / PARAMS_FILE).read_bytes())
    metadata = json.loads((saved / METADATA_FILE).read_text())
    metadata["version"] = "9.1.0"
    (copy / METADATA_FILE).write_text(json.dumps(metadata))
    with pytest.raises(InputError, match=r"saved by samsvae_plus 9\.1\.0"):
        sp.SAMSVAE.load(copy)


class _Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_a_checkpoint_carrying_code_is_refused(saved, tmp_path, capsys):
    copy = tmp_path / "evil"
    copy.mkdir()
    (copy / METADATA_FILE).write_text((saved / METADATA_FILE).read_text())
    with open(copy / PARAMS_FILE, "wb") as handle:
        pickle.dump({"x": _Payload()}, handle)
    with pytest.raises(InputError, match="not a plain tensor checkpoint"):
        sp.SAMSVAE.load(copy)
    assert "code ran" not in capsys.readouterr().out


def test_mismatched_genes_are_refused(saved, small_adata):
    with pytest.raises(InputError, match="genes"):
        sp.SAMSVAE.load(saved, adata=small_adata[:, ::-1].copy())
    with pytest.raises(InputError, match="23 of the model's 200 genes are missing"):
        sp.SAMSVAE.load(saved, adata=small_adata[:, 23:].copy())


def test_mismatched_perturbations_are_refused(saved, small_adata):
    other = small_adata.copy()
    other.obs["condition"] = other.obs["condition"].astype(str).replace("P001", "NEWGENE")
    with pytest.raises(
        InputError, match=r"1 condition\(s\) the model was not set up with \(e.g. 'NEWGENE'\)"
    ):
        sp.SAMSVAE.load(saved, adata=other)


def test_save_replaces_an_existing_directory_whole(trained_model, tmp_path):
    path = tmp_path / "m"
    path.mkdir()
    (path / "stale.txt").write_text("old")
    trained_model.save(path)
    assert sorted(p.name for p in path.iterdir()) == sorted([METADATA_FILE, PARAMS_FILE])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_the_base_class_loads_every_family_member_in_a_fresh_process(tiny_adata, tmp_path):
    # The CLI loads through PerturbationModel without importing the user classes; the
    # saved class name must still resolve (it did not for CPAVAE before).
    import subprocess
    import sys

    model = sp.CPAVAE(tiny_adata, latent_dim=3)
    model.train(max_epochs=1, batch_size=64, progress=False)
    model.save(tmp_path / "cpa")
    code = (
        "from samsvae_plus.model.base import PerturbationModel; "
        f"print(type(PerturbationModel.load({str(tmp_path / 'cpa')!r})).__name__)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "CPAVAE"
