"""Posterior draws of treatment effects for posterior-predictive checks.

Two kinds of draws, because a check must compare like with like:

- :func:`context_ate_draws`, the *population* ATE of each (context, condition) pair: for
  each draw of the globals, basal states from the prior (or from the encoder applied to
  real control cells), library size 1e4, common random numbers between condition and
  control (:func:`~samsvae_plus.inference.posterior.ate_draws`). Their spread is the
  posterior uncertainty of the globals plus the Monte Carlo error of ``n_cells`` cells
  per context.
- :func:`replicated_group_means`, replicates of the *observed design*: every evaluated
  cell is generated again with its own context, condition and library size, and the group
  means are taken as on the data. An ATE computed from them has the sampling noise of the
  data's ATE (the same numbers of cells, no common random numbers), so the data's ATE
  should fall inside their intervals as often as the nominal level says.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from samsvae_plus.data.encode import EncodedData, dosage_matrix
from samsvae_plus.data.loaders import Batch, make_batch
from samsvae_plus.data.registry import Registry
from samsvae_plus.inference.posterior import (
    ate_draws,
    encode_basal,
    global_draws,
    log_normalize_torch,
    population_dosage,
    sample_counts,
    trace_prior,
    untrained_actions,
)


def context_ate_draws(
    pair: nn.ModuleDict,
    registry: Registry,
    pairs: pd.MultiIndex,
    *,
    n_draws: int,
    n_cells: int,
    seed: int = 0,
    target_sum: float = 1e4,
    basal_cells: dict[int, Batch] | None = None,
    actions: str = "genes",
    population: torch.Tensor | None = None,
    space: str = "model",
) -> np.ndarray:
    """Population ATE draws of ``(context label, condition)`` pairs.

    Draw ``d`` uses the same globals for every pair (all contexts are seeded alike), so
    pooling pairs over contexts keeps draws joint. ``actions`` is the model's dosage
    encoding and ``population`` which actions had training cells in which context (see
    :func:`~samsvae_plus.inference.posterior.ate_draws`).

    Returns
    -------
    ndarray
        Draws x pairs x genes (``float32``).
    """
    contexts = list(registry.contexts)
    out = np.empty((n_draws, len(pairs), registry.n_genes), dtype=np.float32)
    labels = pairs.get_level_values(0)
    for context in pd.unique(labels):
        rows = np.flatnonzero(labels == context)
        conditions = list(pairs.get_level_values(1)[rows])
        dosage = torch.from_numpy(dosage_matrix(conditions, registry, actions).toarray())
        out[:, rows] = ate_draws(
            pair,
            dosage,
            [contexts.index(context)],
            n_draws=n_draws,
            n_cells=n_cells,
            n_genes=registry.n_genes,
            target_sum=target_sum,
            seed=seed,
            population=population,
            basal_cells=basal_cells,
            space=space,
        ).numpy()
    return out


@torch.no_grad()
def replicated_group_means(
    pair: nn.ModuleDict,
    data: EncodedData,
    group_codes: np.ndarray,
    n_groups: int,
    *,
    n_draws: int,
    seed: int = 0,
    basal_source: np.ndarray | None = None,
    target_sum: float = 1e4,
    batch_size: int = 1024,
    device: torch.device | str = "cpu",
    progress: bool = True,
    population: torch.Tensor | None = None,
) -> np.ndarray:
    """Group means of ``log2(1e4 x / sum x + 1)`` over replicates of the observed cells.

    For each draw of the globals, every cell of ``data`` is generated anew under its own
    dosage, context and library size, and the log-normalised counts are averaged within
    the groups given by ``group_codes``.

    Parameters
    ----------
    basal_source
        ``None`` draws every basal state from the prior. Otherwise, for each cell, the row
        of ``data`` (a control cell of the same context) whose encoded basal state it
        takes: the guide's encoder is applied to that cell's real counts.
    population
        Which actions had training cells in which context: an untrained action's dose
        goes to a trained one per cell
        (:func:`~samsvae_plus.inference.posterior.population_dosage`).

    Returns
    -------
    ndarray
        Draws x groups x genes (``float32``).
    """
    model, guide = pair["model"], pair["guide"]
    codes = torch.as_tensor(group_codes, dtype=torch.long)
    sizes = torch.bincount(codes, minlength=n_groups).clamp_min(1).to(device)
    means = np.empty((n_draws, n_groups, data.counts.shape[1]), dtype=np.float32)
    starts = range(0, data.n_cells, batch_size)
    with tqdm(
        total=n_draws * len(starts), desc="replicates", disable=not progress, leave=False
    ) as bar:
        draws = global_draws(guide, n_draws, seed, model, untrained_actions(population))
        for d, globals_trace in enumerate(draws):
            sums = torch.zeros(n_groups, data.counts.shape[1], device=device)
            for start in starts:
                rows = np.arange(start, min(start + batch_size, data.n_cells))
                batch = make_batch(data, rows, rows - start, device)
                dosage = population_dosage(batch.dosage, batch.context, population)
                batch = replace(batch, dosage=dosage)
                if basal_source is None:
                    unobserved = replace(batch, counts=None)  # so that the model samples them
                    counts = trace_prior(model, globals_trace, unobserved).nodes["x"]["value"]
                else:
                    source = make_batch(data, basal_source[rows], rows - start, device)
                    latents = encode_basal(guide, globals_trace, source)
                    counts = sample_counts(model, latents, batch)
                sums.index_add_(0, codes[rows].to(device), log_normalize_torch(counts, target_sum))
                bar.update()
            means[d] = (sums / sizes[:, None]).cpu().numpy()
    return means
