"""Shared fixtures: tiny simulated data sets, built once per session."""

from __future__ import annotations

import pytest
import torch
from helpers.hypothesis_profiles import load_profile
from helpers.simulations import FAST_TRAINING, small_simulation, tiny_simulation

import samsvae_plus as sp

torch.set_num_threads(2)


def pytest_configure(config):
    # Here rather than at import, so that a bad SAMSVAE_HYPOTHESIS_PROFILE ends the run with
    # a one-line usage error before collection.
    load_profile()


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
