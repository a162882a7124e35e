"""The expression part of a gene token, as in STATE's State Embedding (SE) model.

A gene's normalised log expression ``v = log1p(1e4 x / l)`` is soft-binned: a softmax over
its closeness to learned bin centres gives mixing weights, the weights mix learned bin
embeddings, and a small MLP maps the mixture to the token width. Soft bins let the network
treat expression levels non-linearly (a gene switched on is not just "more" of a gene at
a trace) while staying differentiable and ordered, where hard bins would not be.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from samsvae_plus.nn.mlp import MLP

# log1p(1e4 x / l) of one count in a cell of 1e4-1e5 counts is 0.1-0.7, and a gene holding
# a tenth of the counts reaches log1p(1e3) = 6.9: the initial centres span that range.
MAX_LOG_EXPRESSION = 8.0


class SoftBinExpression(nn.Module):
    """``MLP(sum_b softmax_b(-(v - c_b)^2 / 2w^2) * E_b)`` for each expression value ``v``.

    Parameters
    ----------
    out_features
        Width of the encoding (the token width).
    n_bins
        Number of bins (learned centres ``c_b`` and embeddings ``E_b``).
    """

    def __init__(self, out_features: int, n_bins: int = 16) -> None:
        super().__init__()
        self.centres = nn.Parameter(torch.linspace(0.0, MAX_LOG_EXPRESSION, n_bins))
        # one shared width, starting at the spacing of the centres
        self.log_width = nn.Parameter(torch.tensor(math.log(MAX_LOG_EXPRESSION / (n_bins - 1))))
        self.bins = nn.Parameter(torch.randn(n_bins, out_features))
        self.mlp = MLP(out_features, out_features, (out_features,))

    def weights(self, value: torch.Tensor) -> torch.Tensor:
        """Soft-bin weights, ``value.shape + (n_bins,)``, summing to 1."""
        distance = (value.unsqueeze(-1) - self.centres) / self.log_width.exp()
        return torch.softmax(-0.5 * distance.square(), dim=-1)

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.weights(value) @ self.bins)
