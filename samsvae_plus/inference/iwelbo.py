"""Importance-weighted evidence lower bounds (IWELBO) of held-out cells.

For cell ``i`` and importance sample ``s``, with global latents ``g_s ~ q(g)`` and local
latents ``z_is ~ q(z | x_i, g_s)``,

    w_is = log p(x_i | z_is, g_s) + log p(z_is | g_s) - log q(z_is | x_i, g_s)

and the bound is ``logsumexp_s w_is - log S``. Everything is read from Pyro traces
(:mod:`samsvae_plus.inference.sites`), so any model of the family is scored the same way
whatever its latent sites are called, and a model without global latents gets the
ordinary importance-weighted bound of a VAE.
"""

from __future__ import annotations

import math

import numpy as np
import pyro.poutine as poutine
import torch
from torch import nn
from tqdm.auto import tqdm

from samsvae_plus.data.encode import EncodedData
from samsvae_plus.data.loaders import Batch, make_batch
from samsvae_plus.inference.posterior import encode_basal, global_draw
from samsvae_plus.inference.sites import (
    global_latent_sites,
    local_latent_sites,
    observed_sites,
    summed_cell_log_prob,
    total_log_prob,
)


def local_log_weight(
    model: nn.Module, guide: nn.Module, globals_trace: poutine.Trace, batch: Batch
) -> torch.Tensor:
    """``w_i`` of every cell of ``batch`` for one draw of the globals (one value per cell).

    The guide samples the local latents with the globals replayed from
    ``globals_trace``; the model scores the counts and the local latents at those values.
    Local sites the guide does not sample are drawn from the prior inside the model, so
    their prior and proposal cancel and they are left out of both terms.
    """
    n = len(batch)
    guide_trace = encode_basal(guide, globals_trace, batch)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(batch, n)
    guided = local_latent_sites(guide_trace)
    prior_sites = [name for name in local_latent_sites(model_trace) if name in guided]
    return (
        summed_cell_log_prob(model_trace, observed_sites(model_trace), n)
        + summed_cell_log_prob(model_trace, prior_sites, n)
        - summed_cell_log_prob(guide_trace, guided, n)
    )


def global_log_ratio(model: nn.Module, globals_trace: poutine.Trace, batch: Batch) -> torch.Tensor:
    """``log p(g) - log q(g)`` of one draw of the globals (a scalar)."""
    model_trace = poutine.trace(poutine.replay(model, trace=globals_trace)).get_trace(
        batch, len(batch)
    )
    return total_log_prob(model_trace, global_latent_sites(model_trace)) - total_log_prob(
        globals_trace, global_latent_sites(globals_trace)
    )


def _log_mean_exp(weights: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(weights, dim=0) - math.log(weights.shape[0])


@torch.no_grad()
def importance_weighted_bound(
    pair: nn.ModuleDict,
    data: EncodedData,
    *,
    n_samples: int = 100,
    batch_size: int = 512,
    include_global_kl: bool = False,
    n_global_draws: int = 1,
    device: torch.device | str = "cpu",
    progress: bool = True,
    untrained: torch.Tensor | None = None,
) -> np.ndarray:
    """Per-cell importance-weighted bound (nats) of the cells of ``data``.

    Sampling uses the global torch generator; seed it (or fork it) around the call.

    Predictive bound (the default): ``n_samples`` draws of the globals are taken once and
    shared by every cell; sample ``s`` of every cell uses draw ``g_s``. Its expectation is
    a lower bound on ``log integral q(g) p(x_i | g) dg``, the cell's log predictive density
    under the approximate posterior of the globals, and it tightens as ``n_samples`` grows.
    The globals are not scored against their prior.

    Full-model bound (``include_global_kl``): for each of ``n_global_draws`` draws ``g_j``,
    every cell gets ``n_samples`` local samples given ``g_j``, and
    ``(log p(g_j) - log q(g_j)) / n_cells`` is added, so that the mean over cells, times
    the number of cells, is a lower bound on ``log p(X)`` of these cells as a data set
    under the prior. Costs ``n_global_draws`` times more.

    ``untrained`` flags perturbations without training cells: in the predictive bound their
    globals are drawn from the prior (see :func:`~samsvae_plus.inference.posterior.global_draw`);
    the full-model bound scores the guide as it is.

    Memory stays at one batch x genes: importance samples are processed one at a time and
    only their ``n_samples x batch`` log-weights are kept; results go to the CPU per batch.

    Returns
    -------
    ndarray
        ``float64`` bound per cell, in the order of ``data``'s rows.
    """
    if n_samples < 1 or n_global_draws < 1 or batch_size < 1:
        raise ValueError("n_samples, n_global_draws and batch_size must be positive")
    model, guide = pair["model"], pair["guide"]
    n_outer = n_global_draws if include_global_kl else 1
    # The predictive bound pairs sample s with its own global draw; the full bound reuses
    # one global draw for all n_samples local samples of an outer repetition.
    if include_global_kl:
        draws = [global_draw(guide) for _ in range(n_outer)]
    else:
        draws = [global_draw(guide, model, untrained) for _ in range(n_samples)]
    starts = range(0, data.n_cells, batch_size)
    bound = np.zeros(data.n_cells)
    global_term = 0.0
    with tqdm(total=n_outer * len(starts), desc="IWELBO", disable=not progress, leave=False) as bar:
        for j in range(n_outer):
            for start in starts:
                rows = np.arange(start, min(start + batch_size, data.n_cells))
                batch = make_batch(data, rows, rows - start, device)
                samples = [draws[j]] * n_samples if include_global_kl else draws
                weights = torch.stack([local_log_weight(model, guide, g, batch) for g in samples])
                bound[rows] += _log_mean_exp(weights).double().cpu().numpy() / n_outer
                if include_global_kl and start == 0:
                    global_term += float(global_log_ratio(model, draws[j], batch)) / n_outer
                bar.update()
    return bound + global_term / data.n_cells
