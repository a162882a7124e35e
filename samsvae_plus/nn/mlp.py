"""A plain multilayer perceptron, the building block of encoders and decoders."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class MLP(nn.Sequential):
    """Linear layers with LayerNorm, SiLU and optional dropout between them.

    LayerNorm rather than BatchNorm, because the networks see tensors with leading particle
    dimensions and a cell's output must not depend on the other cells of its batch.

    Parameters
    ----------
    in_features, out_features
        Input and output widths.
    hidden
        Widths of the hidden layers; empty for a single linear map.
    dropout
        Dropout probability after each hidden activation.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (128, 128),
        dropout: float = 0.0,
    ) -> None:
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LayerNorm(h), nn.SiLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, out_features))
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 - nn.Sequential's
        return super().forward(x)
