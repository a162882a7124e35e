"""Decoders from a latent state to expression proportions over genes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from samsvae_plus.nn.mlp import MLP


class SoftmaxDecoder(nn.Module):
    """``log rho = log_softmax(MLP(z))``: expression proportions over genes.

    Multiplying ``rho`` by the library size gives the negative-binomial mean, so the
    decoder only has to explain composition, not sequencing depth.
    """

    def __init__(self, in_features: int, n_genes: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.net = MLP(in_features, n_genes, hidden)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.net(z), dim=-1)

    @torch.no_grad()
    def rotate_input(self, rotation: torch.Tensor) -> None:
        """Absorb ``z' = Q z`` into the first layer so that outputs are unchanged."""
        first = self.net[0]
        first.weight.copy_(first.weight @ rotation.T)
