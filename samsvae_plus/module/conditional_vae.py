"""A conditional VAE: perturbations enter the decoder as an input, not the latent space.

    z_i ~ N(mu_{c_i}, I),   x_i ~ NB(l_i * softmax(decoder([z_i, d_i])), theta),
    q(z_i | x_i, d_i).

There are no global latents: a perturbation's effect is whatever the decoder does with its
dosage column, so there is no prior to fall back on for a perturbation never seen in
training, and the effect of a combination is not constrained to be additive.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from samsvae_plus.data.loaders import Batch
from samsvae_plus.module.likelihood import CountLikelihood
from samsvae_plus.module.local_params import LocalPyroModule
from samsvae_plus.nn.encoders import concat_broadcast


class ConditionalVAEModel(LocalPyroModule):
    """``p(x, z | d)`` with the dosage row concatenated to the decoder input."""

    def __init__(
        self,
        n_genes: int,
        n_perturbations: int,
        n_contexts: int,
        latent_dim: int,
        *,
        hidden: Sequence[int],
    ) -> None:
        super().__init__()
        self.basal_loc = nn.Parameter(torch.zeros(n_contexts, latent_dim))
        self.likelihood = CountLikelihood(latent_dim + n_perturbations, n_genes, hidden)

    def sample_globals(self) -> None:
        """There are no global latents."""
        return None

    def prior_global_means(self) -> None:
        """There are no global latents."""
        return None

    def log_proportions(
        self, z: torch.Tensor, dosage: torch.Tensor, global_values: None = None
    ) -> torch.Tensor:
        """``log softmax(decoder([z, d]))``: the expression proportions of cells with latent
        states ``z`` under ``dosage`` (the negative binomial's mean over the library size)."""
        return self.likelihood.decoder(concat_broadcast(z, dosage))

    def forward(self, batch: Batch, n_cells: int) -> torch.Tensor:
        with pyro.plate("cells", n_cells, subsample=batch.index):
            z = pyro.sample("z", dist.Normal(self.basal_loc[batch.context], 1.0).to_event(1))
            return self.likelihood(concat_broadcast(z, batch.dosage), batch)


class ConditionalVAEGuide(LocalPyroModule):
    """``q(z_i | x_i, d_i)`` from an encoder that reads the dosage row as a condition."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def sample_globals(self) -> None:
        return None

    def global_means(self) -> None:
        """There are no global latents."""
        return None

    def basal_parameters(
        self, batch: Batch, global_values: None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Location and scale of ``q(z | x, d)`` for ``batch``."""
        return self.encoder(batch.counts, batch.library_size, batch.dosage)

    def forward(self, batch: Batch, n_cells: int) -> None:
        with pyro.plate("cells", n_cells, subsample=batch.index):
            loc, scale = self.basal_parameters(batch)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))
