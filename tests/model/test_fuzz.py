"""Property-based fuzzing of registration and training.

Invariant: every fuzzed AnnData (any shape from 1 x 1, dense or sparse, integer or float,
categorical or string labels, ASCII or not, with zero to two injected defects) is either
registered and trained cleanly, or rejected with a one-line InputError that names one of
its defects. Nothing else may be raised, and a successful run has no NaN.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.fuzz_requests import bad_options, count_option, seed_option
from helpers.fuzz_strategies import (
    CONTROL,
    FUZZ,
    MOSTLY_CLEAN,
    QUIET_NAMES,
    expect,
    registration_cases,
)
from helpers.hypothesis_profiles import examples
from hypothesis import given, settings
from hypothesis import strategies as st

import samsvae_plus as sp
from samsvae_plus.data.registry import get_registry

# At the ci profile's counts every fuzz test takes seconds to minutes.
pytestmark = [QUIET_NAMES, pytest.mark.slow]


def register(case):
    sp.setup_anndata(case.adata, **case.setup_kwargs)
    return get_registry(case.adata)


@settings(max_examples=examples(600), **FUZZ)
@given(registration_cases())
def test_registration_accepts_clean_data_and_names_each_defect(case):
    registry = expect(lambda: register(case), case.defects)
    if registry is None:
        assert "samsvae_plus" not in case.adata.uns
        return
    assert registry.genes == tuple(case.adata.var_names)
    assert registry.control_label == CONTROL
    # Every gene of every label is in the vocabulary, and nothing else is.
    labels = set(case.adata.obs["condition"].astype(str))
    named = {
        gene
        for label in labels
        for gene in label.split(case.setup_kwargs.get("combination_delimiter", "+"))
        if label != CONTROL
    }
    assert set(registry.perturbations) == named
    assert set(registry.conditions) == labels


@st.composite
def training_options(draw):
    """Options of ``train`` (one epoch, one particle) with zero to two bad ones, and the
    latent size."""
    bad = draw(bad_options("max_epochs", "batch_size", "n_particles", "lr", "seed"))
    options = dict(
        max_epochs=draw(
            st.sampled_from([0, -1, 1.5, None]) if "bad_max_epochs" in bad else st.just(1)
        ),
        batch_size=draw(count_option("bad_batch_size" in bad, 1, 16)),
        n_particles=draw(st.sampled_from([0, 2.0]) if "bad_n_particles" in bad else st.just(1)),
        lr=draw(
            st.sampled_from([0.0, -1e-3, float("nan"), float("inf"), "0.01"])
            if "bad_lr" in bad
            else st.sampled_from([1e-3, 1e-2])
        ),
        seed=draw(seed_option("bad_seed" in bad, none_is_valid=True)),
        progress=False,
    )
    return options, draw(st.integers(1, 3)), tuple(bad)


@settings(max_examples=examples(500), **FUZZ)
@given(registration_cases(max_cells=8, defect_counts=MOSTLY_CLEAN), training_options())
def test_training_one_epoch_is_clean_or_an_input_error(case, drawn):
    options, latent_dim, bad = drawn
    if expect(lambda: register(case), case.defects) is None:
        return
    model = sp.SAMSVAE(case.adata, latent_dim=latent_dim, n_hidden=4, n_layers=1)
    history = expect(lambda: model.train(**options), bad)
    if history is None:
        assert not model.is_trained
        return
    assert len(history.train_elbo) == 1 and np.isfinite(history.train_elbo).all()
    assert np.isfinite(history.validation_elbo).all()
    for name, parameter in model.module.named_parameters():
        assert torch.isfinite(parameter).all(), name
    assert np.isfinite(model.mask_probabilities().to_numpy()).all()
