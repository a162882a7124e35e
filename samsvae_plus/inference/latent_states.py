"""Cells' latent states and expected expression, at the variational means or a posterior draw.

Works for any model and guide pair of the family through four methods: the guide's
``global_means()`` and ``basal_parameters(batch, global_values)``, and the model's
``prior_global_means()`` and ``log_proportions(z_basal, dosage, global_values)``.
``global_values`` are the masks and embeddings ``(m, e)``, or None for a model without
global latents (the conditional VAE).
"""

from __future__ import annotations

import pyro.poutine as poutine
import torch
from torch import nn

from samsvae_plus.data.loaders import Batch
from samsvae_plus.module.sams_vae import latent_shift

# What get_latent_representation returns: the basal state, the perturbation's shift
# d_i (m * e), or their sum z.
LATENT_KINDS = ("basal", "z", "shift")


def global_means(pair: nn.ModuleDict, untrained: torch.Tensor | None = None):
    """The masks and embeddings at their variational means; rows of actions flagged in
    ``untrained`` (no training cells) take their prior means instead, as
    :func:`~samsvae_plus.inference.posterior.global_draw` takes their prior draws."""
    means = pair["guide"].global_means()
    if means is None or untrained is None or not bool(untrained.any()):
        return means
    prior = pair["model"].prior_global_means()
    return tuple(torch.where(untrained[:, None], p, m) for p, m in zip(prior, means, strict=True))


def global_values(guide: nn.Module, globals_trace: poutine.Trace):
    """The masks and embeddings of one draw of the globals (``globals_trace``, from
    :func:`~samsvae_plus.inference.posterior.global_draw`), as ``sample_globals`` returns
    them: fixed masks and point embeddings are not sample sites, so they are not in the
    trace itself."""
    return poutine.replay(guide.sample_globals, trace=globals_trace)()


def basal_states(guide: nn.Module, batch: Batch, values, *, give_mean: bool) -> torch.Tensor:
    """Basal states of ``batch``'s cells: the location of the guide's ``q(z_basal | x, ...)``
    with ``give_mean``, else a draw from it."""
    loc, scale = guide.basal_parameters(batch, values)
    return loc if give_mean else torch.normal(loc, scale)


def latent_states(
    guide: nn.Module, batch: Batch, values, kind: str, *, give_mean: bool
) -> torch.Tensor:
    """Cells x latent dims: ``kind`` ``"basal"``, ``"shift"`` (``d_i (m * e)`` of each
    cell's own dosage) or ``"z"`` (their sum), given the masks and embeddings ``values``
    (their means, or one draw)."""
    if kind == "basal":
        return basal_states(guide, batch, values, give_mean=give_mean)
    shift = latent_shift(batch.dosage, *values)
    if kind == "shift":
        return shift
    return basal_states(guide, batch, values, give_mean=give_mean) + shift


def expected_expression(
    model: nn.Module,
    basal: torch.Tensor,
    dosage: torch.Tensor,
    values,
    library_size: torch.Tensor,
) -> torch.Tensor:
    """``library_size * softmax(decoder(...))``: the negative binomial's mean, i.e. the
    expression the model expects without count noise, of cells with basal states ``basal``
    under ``dosage``."""
    return library_size.unsqueeze(-1) * model.log_proportions(basal, dosage, values).exp()
