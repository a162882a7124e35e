"""Masked-expression pretraining objective of the token transformer.

A random subset of each cell's tokens has its expression hidden (the gene stays visible);
a small decoder predicts each hidden token's normalised log expression from the cell's
[CLS] output and the gene's vector. To do well, [CLS] must summarise the cell's state, so
what it learns needs no perturbation labels and no cell types: any cells will do, control
cells of many cell types included.
"""

from __future__ import annotations

import torch
from torch import nn

from samsvae_plus.nn.mlp import MLP
from samsvae_plus.nn.transformer import GeneTokenTransformer


class MaskedExpressionHead(nn.Module):
    """``MLP([cls, gene vector]) -> log expression`` of hidden tokens."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.net = MLP(2 * d_model, 1, (d_model,))

    def forward(self, cls: torch.Tensor, genes: torch.Tensor) -> torch.Tensor:
        """``cls``: cells x d; ``genes``: cells x tokens x d; returns cells x tokens."""
        joined = torch.cat([cls.unsqueeze(1).expand_as(genes), genes], dim=-1)
        return self.net(joined).squeeze(-1)


def choose_hidden(
    padding: torch.Tensor, fraction: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Tokens to hide: each real token with probability ``fraction``, and at least one per
    cell (the cell's token with the smallest draw), so every cell contributes."""
    draws = torch.rand(padding.shape, generator=generator, device=padding.device)
    draws = draws.masked_fill(padding, 2.0)  # padding is never hidden
    smallest = draws == draws.amin(dim=-1, keepdim=True)
    return ((draws < fraction) | smallest) & ~padding


def masked_expression_loss(
    body: GeneTokenTransformer,
    head: MaskedExpressionHead,
    counts: torch.Tensor,
    library_size: torch.Tensor,
    fraction: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean squared error of the hidden tokens' log expression, over all hidden tokens."""
    index, value, padding = body.select_tokens(counts, library_size)
    hide = choose_hidden(padding, fraction, generator)
    cls = body.encode_tokens(index, value, padding, hide=hide)
    predicted = head(cls, body.genes()[index])
    return (predicted - value).square()[hide].mean()
