"""The observation model every model of the family shares."""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import torch
from torch import nn

from samsvae_plus.data.loaders import Batch
from samsvae_plus.module.distributions import NegativeBinomial
from samsvae_plus.module.local_params import LocalPyroModule
from samsvae_plus.nn.decoders import SoftmaxDecoder


class CountLikelihood(LocalPyroModule):
    """``x ~ NB(mean = l * softmax(decoder(z)), inverse dispersion theta_g)``.

    ``l`` is the cell's observed library size and ``theta_g`` a learned per-gene point
    estimate. Call it inside the cell plate; with ``batch.counts`` set to ``None`` the site
    samples counts instead of scoring them.
    """

    def __init__(self, in_features: int, n_genes: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.decoder = SoftmaxDecoder(in_features, n_genes, hidden)
        self.log_inverse_dispersion = nn.Parameter(torch.full((n_genes,), 1.0))

    def distribution(self, z: torch.Tensor, library_size: torch.Tensor) -> NegativeBinomial:
        log_mean = self.decoder(z) + library_size.log().unsqueeze(-1)
        return NegativeBinomial(log_mean, self.log_inverse_dispersion.exp())

    def rotate_latent(self, rotation: torch.Tensor) -> None:
        """Absorb a rotation ``z' = Q z`` of the latent input into the decoder."""
        self.decoder.rotate_input(rotation)

    def forward(self, z: torch.Tensor, batch: Batch) -> torch.Tensor:
        return pyro.sample(
            "x", self.distribution(z, batch.library_size).to_event(1), obs=batch.counts
        )
