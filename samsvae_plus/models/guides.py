"""Variational families for SAMS-VAE."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.nn import PyroModule
from torch import nn

from samsvae_plus.data.loaders import Batch
from samsvae_plus.models.distributions import StraightThroughBernoulli
from samsvae_plus.models.sams_vae import latent_shift

# Logit of a pinned mask: sigmoid(12) = 1 - 6e-6.
PINNED_LOGIT = 12.0


def _inverse_softplus(value: float) -> float:
    return float(torch.log(torch.expm1(torch.tensor(value))))


class MeanFieldGuide(PyroModule):
    """``q(m) q(e) prod_i q(z_basal_i | x_i)``, fully factorised over the globals.

    - ``q(m_tk) = Bernoulli(sigmoid(l_tk))``, sampled by a straight-through relaxed
      Bernoulli and scored by the discrete pmf;
    - ``q(e_tk) = Normal(mu_tk, s_tk)``;
    - ``q(z_basal_i | x_i)`` amortized by ``basal_encoder``. With ``basal_sees_shift`` the
      encoder also reads the cell's sampled latent shift ``d_i (m * e)``.

    Parameters
    ----------
    n_perturbations, latent_dim
        Shape of the global latents.
    basal_encoder
        Module mapping ``(counts, library_size, extra)`` to ``(loc, scale)``.
    temperature
        Relaxation temperature of the mask's straight-through gradient.
    basal_sees_shift
        Whether the encoder input includes the sampled shift.
    """

    def __init__(
        self,
        n_perturbations: int,
        latent_dim: int,
        basal_encoder: nn.Module,
        *,
        temperature: float = 0.5,
        basal_sees_shift: bool = False,
        initial_mask_probability: float = 0.5,
        initial_embedding_scale: float = 0.1,
    ) -> None:
        super().__init__()
        shape = (n_perturbations, latent_dim)
        self.basal_encoder = basal_encoder
        self.basal_sees_shift = basal_sees_shift
        self.register_buffer("temperature", torch.tensor(float(temperature)))
        p = torch.tensor(initial_mask_probability)
        self.mask_logits = nn.Parameter(torch.full(shape, float(torch.logit(p))))
        self.embedding_loc = nn.Parameter(initial_embedding_scale * torch.randn(shape))
        self.embedding_raw_scale = nn.Parameter(
            torch.full(shape, _inverse_softplus(initial_embedding_scale))
        )

    @torch.no_grad()
    def pin_masks(self, pinned: bool = True) -> None:
        """Fix every mask to 1 (a CPA-like dense phase), or release them for learning.

        Pinned logits are large enough that a sampled mask is 1 with probability 1 - 6e-6;
        they receive no gradient until released.
        """
        if pinned:
            self.mask_logits.fill_(PINNED_LOGIT)
        self.mask_logits.requires_grad_(not pinned)

    @torch.no_grad()
    def init_masks_from_embedding(self, threshold: float = 0.3, logit: float = 3.0) -> None:
        """Switch on the entries whose embedding is large for their perturbation.

        An entry starts at probability ``sigmoid(logit)`` when ``|e_tk|`` is at least
        ``threshold`` times the largest ``|e_t.|`` and at ``sigmoid(-logit)`` otherwise.
        """
        magnitude = self.embedding_loc.abs()
        relative = magnitude / magnitude.amax(dim=1, keepdim=True).clamp_min(1e-12)
        self.mask_logits.copy_(torch.where(relative >= threshold, logit, -logit))

    @torch.no_grad()
    def rotate_latent(self, rotation: torch.Tensor) -> None:
        """Re-express the guide in the rotated latent basis ``z' = Q z``.

        Embedding means rotate exactly; the variance of each new coordinate is the
        rotation-weighted sum of the old variances (the diagonal of ``Q S Q^T``).
        """
        self.embedding_loc.copy_(self.embedding_loc @ rotation.T)
        variance = F.softplus(self.embedding_raw_scale).square() @ rotation.square().T
        self.embedding_raw_scale.copy_(torch.log(torch.expm1(variance.sqrt())))
        self.basal_encoder.rotate_latent(rotation)

    def mask_probabilities(self) -> torch.Tensor:
        """``q(m_tk = 1)``, perturbations x latent dims."""
        return torch.sigmoid(self.mask_logits)

    def sample_globals(self) -> tuple[torch.Tensor, torch.Tensor]:
        mask = pyro.sample(
            "mask", StraightThroughBernoulli(self.temperature, logits=self.mask_logits).to_event(2)
        )
        embedding = pyro.sample(
            "embedding",
            dist.Normal(self.embedding_loc, F.softplus(self.embedding_raw_scale)).to_event(2),
        )
        return mask, embedding

    def forward(self, batch: Batch, n_cells: int) -> None:
        mask, embedding = self.sample_globals()
        with pyro.plate("cells", n_cells, subsample=batch.index):
            extra = latent_shift(batch.dosage, mask, embedding) if self.basal_sees_shift else None
            loc, scale = self.basal_encoder(batch.counts, batch.library_size, extra)
            pyro.sample("z_basal", dist.Normal(loc, scale).to_event(1))
