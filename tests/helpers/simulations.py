"""Tiny simulated data sets and fast training settings shared by the tests."""

from __future__ import annotations

import samsvae_plus as sp

# Small enough to train in seconds, large enough that masks are identifiable.
SMALL = dict(
    n_perturbations=20,
    n_contexts=2,
    n_genes=200,
    latent_dim=5,
    n_combinations=5,
    cells_per_condition=60,
    n_control_cells=200,
    ate_cells=100,
)
FAST_TRAINING = dict(
    max_epochs=100, dense_epochs=40, n_particles=1, lr=2e-3, batch_size=256, progress=False
)


def small_simulation(seed: int = 0):
    adata = sp.datasets.simulate(**SMALL, seed=seed)
    sp.setup_anndata(adata, "condition", "control", context_key="cell_type")
    return adata


# A very small simulation: trains in a second, and a subprocess can rebuild it from the dict.
TINY = dict(
    n_perturbations=5,
    n_contexts=2,
    n_genes=30,
    latent_dim=3,
    n_combinations=2,
    cells_per_condition=12,
    n_control_cells=24,
    ate_cells=20,
    seed=1,
)


def tiny_simulation(**changes):
    """A registered ``TINY`` simulation, with ``changes`` to its arguments."""
    adata = sp.datasets.simulate(**{**TINY, **changes})
    sp.setup_anndata(adata, "condition", "control", context_key="cell_type")
    return adata
