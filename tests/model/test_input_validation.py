"""Input validation: every bad input of the table in docs/reliability.md, and the bugs the fuzz suite found.

Each bug below escaped as something other than an InputError (or was accepted silently)
before the fix; the test pins the fixed behaviour.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sps
from helpers.bad_inputs import CATALOGUE, CONTROL, cli_message, registration_data, scorer_pair

import samsvae_plus as sp
from samsvae_plus.challenge.prepare import prepare_prediction
from samsvae_plus.data.registry import get_registry
from samsvae_plus.errors import InputError

RELIABILITY = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
ENTRIES = [(where, what, message) for where, rows in CATALOGUE.items() for what, message in rows]


@pytest.mark.parametrize(("where", "what", "message"), ENTRIES, ids=[e[1] for e in ENTRIES])
def test_each_bad_input_has_its_readme_message(where, what, message):
    """The message is one line, names a fix, and is the one docs/reliability.md shows."""
    text = message()
    assert "\n" not in text and "Traceback" not in text
    assert re.search(
        r"pass|call|remove|drop|label|convert|fix|store|normalise|reorder|choose|"
        r"include|predict|give|replace|load|see|must|retrain",
        text,
    ), text
    assert f"| {what} | `{text}` |" in RELIABILITY.read_text(encoding="utf-8"), (
        f"docs/reliability.md's Bad inputs table is out of date for {what!r}; regenerate it with "
        "`python tests/helpers/bad_inputs.py`"
    )


def test_non_ascii_labels_work_end_to_end(tmp_path):
    """'ÉPÉE' and '基因' as perturbations and genes, '細胞' as a context: register, train,
    predict, sample, ATE, save and load, and score the prediction."""
    adata = registration_data()
    adata.var_names = ["基因", "ÉPÉE", "g2"]
    sp.setup_anndata(adata, "condition", CONTROL, context_key="cell_type")
    assert get_registry(adata).perturbations == ("ÉPÉE", "基因")
    model = sp.SAMSVAE(adata, latent_dim=2, n_hidden=4, n_layers=1)
    model.train(max_epochs=1, n_particles=1, progress=False)
    model.save(tmp_path / "model")
    model = sp.SAMSVAE.load(tmp_path / "model", adata)
    controls = adata[adata.obs["condition"] == CONTROL].copy()
    pred = model.predict(controls, seed=0)
    assert set(pred.obs["condition"]) == {CONTROL, "ÉPÉE", "基因", "ÉPÉE+基因"}
    assert set(model.sample(["基因"], n_cells=3, context="細胞").obs["cell_type"]) == {"細胞"}
    effect = model.average_treatment_effect(["ÉPÉE+基因"], context="細胞", n_draws=2, n_cells=4)
    assert list(effect.index) == ["ÉPÉE+基因"] and np.isfinite(effect.to_numpy()).all()
    real = adata.copy()
    result = sp.metrics.challenge_score(
        pred, real, perturbation_key="condition", control_label=CONTROL
    )
    assert set(result.per_perturbation.index) == {"ÉPÉE", "基因", "ÉPÉE+基因"}


# ---------------------------------------------------------------- bugs found by fuzzing


def test_scorer_handles_a_perturbation_whose_cells_are_all_zero():
    """A group without a single non-zero value crashed the rank test (IndexError)."""

    def silence_p1(pred):
        X = pred.X.toarray()
        X[(pred.obs["target_gene"] == "P1").to_numpy()] = 0
        pred.X = sps.csr_matrix(X)

    pred, real = scorer_pair(silence_p1)
    table = sp.metrics.challenge_score(pred, real).per_perturbation
    assert np.isfinite(table.to_numpy(dtype=float)).all()
    assert table.loc["P1", "de_nsig_pred"] == 0


def test_prep_accepts_dense_float16_log1p():
    """Dense float16 (valid log1p input for the scorer) crashed prep: scipy.sparse has no
    float16."""
    pred, real = scorer_pair(lambda p: None)
    pred.X = np.log1p(pred.X.toarray()).astype(np.float16)
    prepared = prepare_prediction(pred, real.var_names)
    assert prepared.X.dtype == np.float32
    np.testing.assert_allclose(prepared.X.toarray(), pred.X.astype(np.float32), rtol=0, atol=0)


def test_sample_rejects_a_library_size_beyond_int32():
    """library_size=1e40 reached torch and raised RuntimeError; 2**31 was accepted."""
    adata = registration_data()
    sp.setup_anndata(adata, "condition", CONTROL)
    model = sp.SAMSVAE(adata, latent_dim=2, n_hidden=4, n_layers=1)
    model.train(max_epochs=1, n_particles=1, progress=False)
    for size in (1e40, 2.0**31):
        with pytest.raises(InputError, match="library_size must be a positive number at most"):
            model.sample(["ÉPÉE"], n_cells=2, library_size=size)
    assert model.sample(["ÉPÉE"], n_cells=2, library_size=2**31 - 1).n_obs == 2


def test_a_trailing_nul_does_not_merge_two_labels():
    """pandas hashes strings up to a NUL and numpy drops trailing NULs, so 'ÉPÉE\\x00' in
    a string column after 'ÉPÉE' was merged into it silently; a check on unique() misses it."""
    adata = registration_data()
    labels = list(adata.obs["condition"].astype(str))
    labels[5] = "ÉPÉE\x00"
    adata.obs["condition"] = pd.Series(labels, index=adata.obs_names, dtype=object)
    assert "ÉPÉE\x00" not in set(adata.obs["condition"].unique())  # pandas' view of it
    with pytest.raises(InputError, match="non-printable character"):
        sp.setup_anndata(adata, "condition", CONTROL)
    real, _ = scorer_pair(lambda p: None)
    real.obs["target_gene"] = pd.Series(
        ["non-targeting", "non-targeting", "P1", "P1\x00", "P2", "P2"],
        index=real.obs_names,
        dtype=object,
    )
    with pytest.raises(InputError, match="non-printable character"):
        sp.metrics.challenge_score(real, real)


def test_library_size_column_of_strings_is_an_input_error():
    """A non-numeric library-size column raised ValueError from numpy."""
    adata = registration_data()
    adata.obs["depth"] = ["deep"] * adata.n_obs
    with pytest.raises(InputError, match=r"adata.obs\['depth'\] has dtype object"):
        sp.setup_anndata(adata, "condition", CONTROL, library_size_key="depth")


def test_integer_labels_and_control_label_match():
    """control_label=0 never matched an integer column, whose labels compare as '0'."""
    adata = registration_data()
    adata.obs["condition"] = [0, 1, 2, 1] * 2
    sp.setup_anndata(adata, "condition", 0)
    assert get_registry(adata).control_label == "0"
    assert get_registry(adata).perturbations == ("1", "2")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["score", "--pred", "data.h5ad", "--real", "data.h5ad", "--out", "."], "is a directory"),
        (["simulate", "--out", "notes.txt/sim.h5ad"], "which is a file"),
        (
            ["train", "--data", "data.h5ad", "--perturbation-key", "condition"]
            + ["--control-label", CONTROL, "--out", "m", "--dense-epochs", "5"]
            + ["--max-epochs", "2", "--no-progress"],
            "--dense-epochs must be an integer from 0 to --max-epochs - 1",
        ),
        (
            ["prep", "--pred", "data.h5ad", "--genes", "binary.txt", "--out", "p.h5ad"],
            "not UTF-8 text",
        ),
        (["score", "--pred", "data.h5ad"], "the following arguments are required"),
    ],
)
def test_cli_errors_that_used_to_escape_are_one_line(argv, words):
    """Each of these raised IsADirectoryError, FileExistsError, ValueError or
    UnicodeDecodeError, or printed argparse's usage block before a one-line error."""
    assert words in cli_message(*argv)


def test_device_is_checked_before_training():
    """device='cuda' on a machine without CUDA failed inside torch with an AssertionError."""
    import torch

    adata = registration_data()
    sp.setup_anndata(adata, "condition", CONTROL)
    model = sp.SAMSVAE(adata, latent_dim=2, n_hidden=4, n_layers=1)
    with pytest.raises(InputError, match="is not a device"):
        model.train(max_epochs=1, device="bogus", progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="needs CUDA"):
            model.train(max_epochs=1, device="cuda", progress=False)
    assert not model.is_trained


def test_cells_with_duplicate_names_are_refused_at_predict_time():
    """predict() labels its output by source cell, so duplicate names made it ambiguous."""
    adata = registration_data()
    sp.setup_anndata(adata, "condition", CONTROL)
    model = sp.SAMSVAE(adata, latent_dim=2, n_hidden=4, n_layers=1)
    model.train(max_epochs=1, n_particles=1, progress=False)
    controls = ad.AnnData(
        X=np.ones((2, 3)), obs=pd.DataFrame(index=["c", "c"]), var=adata.var.copy()
    )
    with pytest.raises(InputError, match="cell names are not unique"):
        model.predict(controls, ["ÉPÉE"])


def test_decomposed_request_is_named_as_such():
    """A request in NFD used to be reported as an unknown gene."""
    adata = registration_data()
    sp.setup_anndata(adata, "condition", CONTROL)
    model = sp.SAMSVAE(adata, latent_dim=2, n_hidden=4, n_layers=1)
    model.train(max_epochs=1, n_particles=1, progress=False)
    with pytest.raises(InputError, match=r"unicodedata\.normalize\('NFC'"):
        model.average_treatment_effect([unicodedata.normalize("NFD", "ÉPÉE")], n_draws=1)
