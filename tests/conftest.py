"""Shared fixtures (tiny simulated data sets, built once per session) and the slow marker's
rules that hold for whole folders or fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.hypothesis_profiles import load_profile
from helpers.simulations import FAST_TRAINING, small_simulation, tiny_simulation

import samsvae_plus as sp

torch.set_num_threads(2)


TESTS = Path(__file__).parent
# Tests of the scripts outside the package (the experiments' and the benchmarks' smoke runs)
# are slow as a folder, so that a test added there is slow too.
SLOW_FOLDERS = {"experiments", "benchmarks"}
# Session fixtures that train: any test that needs one, even through another fixture, would
# pay for the training in a run that leaves slow tests out.
SLOW_FIXTURES = {"trained_model"}


def pytest_configure(config):
    # Here rather than at import, so that a bad SAMSVAE_HYPOTHESIS_PROFILE ends the run with
    # a one-line usage error before collection.
    load_profile()


def pytest_collection_modifyitems(config, items):
    for item in items:
        in_slow_folder = any(TESTS / folder in item.path.parents for folder in SLOW_FOLDERS)
        if in_slow_folder or SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def small_adata():
    """A registered simulation; treat as read-only (copy before changing it)."""
    return small_simulation(0)


@pytest.fixture(scope="session")
def trained_model(small_adata):
    """SAMS-VAE trained with the fast settings on ``small_adata``."""
    model = sp.SAMSVAE(small_adata, latent_dim=5, basal_sees_shift=True)
    model.train(**FAST_TRAINING, seed=0)
    return model


@pytest.fixture()
def tiny_adata():
    """A fresh, very small registered simulation a test may modify."""
    return tiny_simulation()
