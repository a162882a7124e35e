"""A user's files from the previous layout still load: a saved model and a training
checkpoint written before the package moved to one folder per layer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

import samsvae_plus as sp

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "previous_layout"


def _simulation(expected: dict):
    adata = sp.datasets.simulate(**expected["simulation"])
    sp.setup_anndata(adata, "condition", "control", context_key="cell_type")
    return adata


def test_a_model_saved_by_the_previous_layout_loads_with_its_parameters():
    expected = json.loads((FIXTURE / "expected.json").read_text())
    model = sp.SAMSVAE.load(FIXTURE / "model")
    np.testing.assert_array_equal(
        model.mask_probabilities().round(6).to_numpy(), np.asarray(expected["mask_probabilities"])
    )
    assert model.is_trained and model.split is not None


def test_a_checkpoint_of_the_previous_layout_resumes_to_the_saved_parameters(tmp_path):
    expected = json.loads((FIXTURE / "expected.json").read_text())
    adata = _simulation(expected)
    saved = sp.SAMSVAE.load(FIXTURE / "model", adata=adata)
    shutil.copytree(FIXTURE / "checkpoints", tmp_path / "checkpoints")
    model = sp.SAMSVAE(adata, latent_dim=3, guide="correlated_basal", n_hidden=16)
    model.train(
        **expected["training"],
        seed=0,
        progress=False,
        checkpoint_dir=tmp_path / "checkpoints",
        resume=True,
    )
    state, reference = model.module.state_dict(), saved.module.state_dict()
    assert state.keys() == reference.keys()
    for name in reference:
        assert torch.equal(state[name], reference[name]), name
