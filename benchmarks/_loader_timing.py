"""What ``scale.py`` and ``loader_speed.py`` share: the simulation they draw and how they
time a loader pass and a training step."""

from __future__ import annotations

import time

import numpy as np
import torch

from samsvae_plus.inference.svi import make_loss, parameter_groups

# Passed to ``simulate_to_h5ad`` with the number of cells and genes.
SIMULATION = dict(
    n_perturbations=200,
    n_contexts=3,
    latent_dim=10,
    n_combinations=50,
    library_size_median=500.0,
    ate_cells=50,
    seed=0,
)
MODEL = dict(latent_dim=10, guide="correlated")


def time_pass(loader) -> dict:
    """Wall time of one pass over ``loader``."""
    start = time.perf_counter()
    n = sum(1 for _ in loader)
    elapsed = time.perf_counter() - start
    return {"batches": n, "wall_s": elapsed, "batches_per_s": n / elapsed}


def step_rate(module, batches, n_cells: int, particles: int, steps: int, warmup: int) -> dict:
    """Median time of an Adam step of Pyro's loss on pre-loaded ``batches`` (cycled), so
    that the figure is the training step alone, without the loader."""
    loss = make_loss(module, particles)
    optimizer = torch.optim.Adam(parameter_groups(module, 3e-4, 1.0))
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        value = loss(batches[i % len(batches)], n_cells)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        float(value.detach())
        if i >= warmup:
            times.append(time.perf_counter() - start)
    median = float(np.median(times))
    return {"timed_steps": len(times), "median_s": median, "steps_per_s": 1 / median}
