"""SAMS-VAE's negative ELBO written out in plain PyTorch, without Pyro's machinery.

It is the reference the ``train_speed`` benchmark times Pyro against, so it computes what
:func:`~samsvae_plus.inference.svi.make_loss` (Pyro's ``Trace_ELBO``) computes, with the
same modules and the same random draws in the same order:

- the guide's masks by the relaxed Bernoulli with a straight-through gradient
  (``rand``, then ``round``), scored by the Bernoulli pmf; embeddings and ``z_basal`` by
  reparameterised Normals (``normal_``), in the order masks, embeddings, ``z_basal``;
- ``n_particles`` particles vectorized along a leading dimension; Pyro's particle plate
  gives the globals an extra cell-plate slot of size 1, which holds no random numbers, so
  seeding torch identically before either loss gives bitwise the same draws;
- local terms (``z_basal`` and the counts) scaled by ``n_cells / batch_size``, global
  terms (masks, embeddings) counted once, the sum averaged over particles.

Every site is reparameterised (Pyro's score-function term of the mask site is zero:
:class:`~samsvae_plus.module.distributions.StraightThroughBernoulli` has ``rsample``), so
Pyro's surrogate loss is this loss and the gradients agree too.

Only SAMS-VAE with Bernoulli masks, Normal embeddings and no gene-embedding prior is
covered, with any of the four guides of :data:`~samsvae_plus.module.config.GUIDES`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Normal
from torch.distributions.utils import clamp_probs

from samsvae_plus.data.loaders import Batch
from samsvae_plus.module.sams_vae import latent_shift


def straight_through_mask(
    logits: torch.Tensor, temperature: torch.Tensor, n_particles: int
) -> torch.Tensor:
    """Hard 0/1 masks with the relaxed sample's gradient, as Pyro's
    ``RelaxedBernoulliStraightThrough`` draws them (one ``rand`` of the particles' shape)."""
    probs = clamp_probs(torch.sigmoid(logits)).expand(n_particles, *logits.shape)
    uniforms = clamp_probs(torch.rand(probs.shape, dtype=probs.dtype, device=probs.device))
    logistic = (uniforms.log() - (-uniforms).log1p() + probs.log() - (-probs).log1p()) / temperature
    finfo = torch.finfo(logistic.dtype)
    soft = clamp_probs(torch.clamp(torch.sigmoid(logistic), min=finfo.tiny, max=1.0 - finfo.eps))
    # round() in value; the identity to `soft` in gradient (soft - soft.detach() is exactly 0)
    return soft.round().detach() + (soft - soft.detach())


def check_supported(pair: nn.ModuleDict) -> None:
    """Raise ``NotImplementedError`` for models the plain ELBO does not cover."""
    model, guide = pair["model"], pair["guide"]
    if (
        model.masks != "bernoulli"
        or model.embedding != "normal"
        or model.prior is not None
        or guide.basal_input not in ("x", "expected_shift", "sampled_shift")
    ):
        raise NotImplementedError(
            "the plain ELBO covers SAMS-VAE with Bernoulli masks, Normal embeddings and no "
            "gene-embedding prior"
        )


def plain_negative_elbo(
    pair: nn.ModuleDict, batch: Batch, n_cells: int, n_particles: int
) -> torch.Tensor:
    """``-ELBO`` of ``pair`` (a SAMS-VAE ``module``) on ``batch``, as Pyro's ``Trace_ELBO``.

    Parameters
    ----------
    pair
        ``ModuleDict`` with the ``"model"`` and ``"guide"`` of a built ``SAMSVAE``.
    batch
        The minibatch; the cell plate is ``n_cells`` large.
    n_cells
        Cells in the data set the batch is drawn from.
    n_particles
        Particles, vectorized along the leading dimension.

    Returns
    -------
    torch.Tensor
        A scalar: the particle average of ``-(log p - log q)`` with local terms scaled.
    """
    check_supported(pair)
    model, guide = pair["model"], pair["guide"]
    local_scale = n_cells / len(batch)
    events = (-2, -1)

    # guide: masks, embeddings, then z_basal (the order in which Pyro's guide draws them)
    mask = straight_through_mask(guide.mask_logits, guide.temperature, n_particles)
    log_q_global = -F.binary_cross_entropy_with_logits(
        guide.mask_logits.expand_as(mask), mask, reduction="none"
    ).sum(events)
    loc, raw_scale = guide.embedding_loc, guide.embedding_raw_scale
    if guide.embedding_given_mask is not None:
        d_loc, d_raw_scale = guide.embedding_given_mask(mask)
        loc, raw_scale = loc + d_loc, raw_scale + d_raw_scale
    q_embedding = Normal(loc, F.softplus(raw_scale), validate_args=False)
    embedding = q_embedding.rsample(() if loc.dim() == 3 else (n_particles,))
    log_q_global = log_q_global + q_embedding.log_prob(embedding).sum(events)

    shift = latent_shift(batch.dosage, mask, embedding)
    if guide.basal_input == "x":
        condition = None
    elif guide.basal_input == "expected_shift":
        condition = latent_shift(batch.dosage, guide.mask_probabilities(), guide.embedding_means())
    else:
        condition = shift
    basal_loc, basal_scale = guide.basal_encoder(
        batch.counts, batch.library_size, condition, condition
    )
    q_basal = Normal(basal_loc, basal_scale, validate_args=False)
    z_basal = q_basal.rsample(() if basal_loc.dim() == 3 else (n_particles,))
    log_q_local = q_basal.log_prob(z_basal).sum(-1)

    # model: every latent at the guide's value, counts observed
    log_p_global = Bernoulli(probs=model.mask_prior, validate_args=False).log_prob(mask).sum(events)
    prior_embedding = Normal(0.0, model.embedding_prior_scale, validate_args=False)
    log_p_global = log_p_global + prior_embedding.log_prob(embedding).sum(events)
    prior_basal = Normal(model.basal_loc[batch.context], 1.0, validate_args=False)
    log_p_local = prior_basal.log_prob(z_basal).sum(-1)
    likelihood = model.likelihood.distribution(z_basal + shift, batch.library_size)
    log_p_local = log_p_local + likelihood.log_prob(batch.counts).sum(-1)

    elbo = (log_p_global - log_q_global).sum() + local_scale * (log_p_local - log_q_local).sum()
    return -elbo / n_particles
