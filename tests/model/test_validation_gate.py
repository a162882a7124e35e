"""One validation gate per entry point: every verb checks each of its inputs once.

The checks of :mod:`samsvae_plus.data.validate` (and the registry checks of
:mod:`samsvae_plus.data.checked`) are wrapped to record each call; a verb must run the costly
ones (a pass over the counts, the row sums, the names, the label columns) exactly once per
input AnnData, and never check the same labels twice.
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter

import anndata as ad
import pytest
from helpers.bad_inputs import CONTROL, registration_data

import samsvae_plus as sp
from samsvae_plus.cli.main import main
from samsvae_plus.data import checked, validate
from samsvae_plus.errors import InputError

VALIDATE_CHECKS = (
    "check_is_anndata",
    "check_anndata",
    "check_unique_names",
    "check_counts",
    "row_sums",
    "check_obs_column",
    "check_label_text",
    "check_known_contexts",
    "check_context_request",
    "check_request_labels",
)
REGISTRY_CHECKS = ("check_genes", "check_conditions")

# What one AnnData of cells costs at the gate: its names, its counts (one pass over the
# values, one over the rows), its genes against the registry and its two label columns.
ONE_ADATA = {
    "check_anndata": 1,
    "check_unique_names": 2,
    "check_genes": 1,
    "check_counts": 1,
    "row_sums": 1,
    "check_obs_column": 2,
    "check_known_contexts": 1,
}


class Calls:
    """The checks run, as (name, what was checked) pairs."""

    def __init__(self) -> None:
        self.made: list[tuple[str, str]] = []

    def count(self, name: str) -> int:
        return sum(made == name for made, _ in self.made)

    def clear(self) -> None:
        self.made.clear()

    def assert_costs(self, expected: dict[str, int], *, labels_once: bool = True) -> None:
        """The costly checks ran as often as ``expected`` says (absent: never), and with
        ``labels_once`` no labels were checked twice."""
        counted = ("check_anndata", "check_genes", "check_conditions", *ONE_ADATA)
        costs = {name: self.count(name) for name in dict.fromkeys(counted)}
        assert costs == {name: expected.get(name, 0) for name in costs}, self.made
        if labels_once:
            labels = Counter(what for name, what in self.made if name == "check_label_text")
            assert all(n == 1 for n in labels.values()), labels


def _what(name: str, args: tuple) -> str:
    """The label a check names its input by (``where``, ``what``, the obs key)."""
    if name in ("check_label_text", "check_counts", "check_anndata", "check_is_anndata"):
        return str(args[1]) if len(args) > 1 else "adata"
    if name in ("check_unique_names", "check_obs_column"):
        return str(args[1])
    return ""


@pytest.fixture
def calls(monkeypatch) -> Calls:
    record = Calls()
    for module, names in ((validate, VALIDATE_CHECKS), (checked, REGISTRY_CHECKS)):
        for name in names:
            original = getattr(module, name)

            def counting(*args, _name=name, _original=original, **kwargs):
                record.made.append((_name, _what(_name, args)))
                return _original(*args, **kwargs)

            monkeypatch.setattr(module, name, counting)
    return record


@pytest.fixture(scope="module")
def model():
    adata = registration_data()
    sp.setup_anndata(adata, "condition", CONTROL, context_key="cell_type")
    model = sp.SAMSVAE(adata, latent_dim=2, n_hidden=4, n_layers=1)
    model.train(max_epochs=1, n_particles=1, progress=False)
    return model


def controls() -> ad.AnnData:
    adata = registration_data()
    return adata[adata.obs["condition"] == CONTROL].copy()


def test_registration_construction_and_training_check_once(calls):
    adata = registration_data()
    sp.setup_anndata(adata, "condition", CONTROL, context_key="cell_type")
    # registration sets the genes and contexts the other verbs check against
    calls.assert_costs(
        {k: v for k, v in ONE_ADATA.items() if k not in ("check_genes", "check_known_contexts")}
    )
    assert {what for name, what in calls.made if name == "check_label_text"} >= {
        "adata.var_names",
        "adata.obs_names",
        "adata.obs['condition']",
        "adata.obs['cell_type']",
        "control_label",
    }
    calls.clear()
    model = sp.SAMSVAE(adata, latent_dim=2, n_hidden=4, n_layers=1)
    assert calls.made == [("check_is_anndata", "adata")]
    calls.clear()
    model.train(max_epochs=1, n_particles=1, progress=False)
    calls.assert_costs(ONE_ADATA)


def test_predict_checks_its_cells_once(model, calls):
    model.predict(controls(), ["ÉPÉE"], seed=0)
    calls.assert_costs(ONE_ADATA)
    assert calls.count("check_request_labels") == 1


def test_sample_checks_its_request_once(model, calls):
    model.sample(["ÉPÉE"], n_cells=3, context="細胞")
    calls.assert_costs({"check_known_contexts": 1})
    assert calls.count("check_request_labels") == 1
    assert calls.count("check_context_request") == 1


def test_the_ate_checks_its_basal_cells_once(model, calls):
    model.average_treatment_effect(
        ["ÉPÉE"], n_draws=1, n_cells=2, basal="encoder", adata_controls=controls()
    )
    calls.assert_costs(ONE_ADATA)
    assert calls.count("check_request_labels") == 1


def test_iwelbo_checks_its_cells_once(model, calls):
    model.iwelbo(registration_data(), n_samples=2, progress=False)
    calls.assert_costs(ONE_ADATA)


def test_check_ate_checks_cells_that_also_give_the_basal_states_once(model, calls):
    """The training data is both the evaluated cells and, by default, the basal cells."""
    model.check_ate(model.adata, basal="encoder", n_draws=2, n_cells=2, progress=False)
    calls.assert_costs(ONE_ADATA)
    calls.clear()
    adata = registration_data()
    model.check_ate(
        adata, basal="encoder", adata_controls=adata, n_draws=2, n_cells=2, progress=False
    )
    calls.assert_costs(ONE_ADATA)


def test_checked_cells_are_not_checked_again(model, calls):
    cells = model.check_cells(registration_data())
    calls.clear()
    model.iwelbo(cells, n_samples=2, progress=False)
    model.check_ate(
        cells, basal="encoder", adata_controls=cells, n_draws=2, n_cells=2, progress=False
    )
    calls.assert_costs({})


def test_checked_cells_belong_to_one_model(model):
    other = registration_data()
    sp.setup_anndata(other, "condition", CONTROL)  # no contexts: another registry
    cells = sp.SAMSVAE(other, latent_dim=2).check_cells(other)
    with pytest.raises(InputError, match="checked against another model"):
        model.iwelbo(cells, n_samples=2, progress=False)


def test_load_checks_its_data_once(model, calls, tmp_path):
    model.save(tmp_path / "model")
    calls.clear()
    sp.SAMSVAE.load(tmp_path / "model", adata=registration_data())
    assert Counter(name for name, _ in calls.made) == Counter(
        {"check_is_anndata": 1, "check_genes": 1, "check_conditions": 1}
    )


@pytest.mark.filterwarnings("ignore:Glyph")  # the figures' CJK labels
def test_evaluate_command_checks_each_input_once(model, calls, tmp_path):
    """The evaluated cells are checked once for both IWELBO and the ATE check, and the
    file's control cells once for the basal states, before any long computation."""
    model.save(tmp_path / "model")
    registration_data().write_h5ad(tmp_path / "data.h5ad")
    calls.clear()
    argv = ["evaluate", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "data.h5ad")]
    options = ["--split", "all", "--basal", "encoder", "--n-samples", "2", "--n-draws", "2"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*argv, *options, "--no-progress", "--out", str(tmp_path / "out")]) == 0
    # the cells of the split, and the file's control cells
    calls.assert_costs({name: 2 * n for name, n in ONE_ADATA.items()}, labels_once=False)


def test_the_gates_refuse_what_is_not_an_anndata(model, tmp_path):
    """The ATE's basal cells and load's data raised AttributeError before they had a gate."""
    with pytest.raises(InputError, match="adata_controls must be an AnnData, got str"):
        model.average_treatment_effect(basal="encoder", adata_controls="cells.h5ad")
    model.save(tmp_path / "model")
    with pytest.raises(InputError, match="adata must be an AnnData, got str"):
        sp.SAMSVAE.load(tmp_path / "model", adata="cells.h5ad")
    with pytest.raises(InputError, match="adata must be an AnnData, got str"):
        sp.SAMSVAE("cells.h5ad")
