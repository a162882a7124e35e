"""Amortized Gaussian encoders of the basal state, q(z_basal | x, ...)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from samsvae_plus.data.transforms import ENCODER_TARGET_SUM
from samsvae_plus.nn.mlp import MLP

# Added to the standard deviation so a gene constant in training maps to 0, not NaN; such
# genes also get a unit scale (see ExpressionStandardizer.set_statistics).
STANDARDIZE_EPS = 1e-3
MIN_SCALE = 1e-4


class ExpressionStandardizer(nn.Module):
    """``(log1p(1e4 x / l) - mean_g) / (std_g + eps)`` with statistics of the training cells.

    The statistics are buffers: they are saved with the model and move with it between
    devices, and they are set once from the training split by :meth:`set_statistics`.
    """

    def __init__(self, n_genes: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_genes))
        self.register_buffer("std", torch.ones(n_genes))

    def set_statistics(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Use these per-gene statistics; a gene (nearly) constant in training is centred
        but not scaled, so that a later cell expressing it cannot blow up the input."""
        std = np.where(np.asarray(std) < STANDARDIZE_EPS, 1.0, std)
        self.mean.copy_(torch.as_tensor(mean, dtype=self.mean.dtype))
        self.std.copy_(torch.as_tensor(std, dtype=self.std.dtype))

    def forward(self, counts: torch.Tensor, library_size: torch.Tensor) -> torch.Tensor:
        log_expression = torch.log1p(counts * (ENCODER_TARGET_SUM / library_size.unsqueeze(-1)))
        return (log_expression - self.mean) / (self.std + STANDARDIZE_EPS)


def concat_broadcast(h: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
    """``[h, condition]`` along the last axis, broadcasting their leading (particle, cell)
    dimensions against each other."""
    condition = condition.to(h.dtype)
    batch = torch.broadcast_shapes(h.shape[:-1], condition.shape[:-1])
    return torch.cat(
        [h.expand(*batch, h.shape[-1]), condition.expand(*batch, condition.shape[-1])], dim=-1
    )


class GaussianEncoder(nn.Module):
    """Normal parameters of a cell's local latent from features of its counts.

    A subclass computes per-cell features (:meth:`features`) and owns ``self.net``, an
    :class:`~samsvae_plus.nn.mlp.MLP` from ``features + condition_features`` to
    ``2 * latent_dim`` (location, raw scale). Two optional inputs serve the different
    variational families:

    - ``condition_features``: a vector concatenated to the features, such as the cell's
      latent shift (correlated SAMS-VAE guides) or its dosage row (conditional VAE). It is
      joined after the features, so features that are costly (a transformer's) are
      computed once per cell, not once per particle;
    - ``subtract_shift``: the network predicts the cell's total latent state and the
      encoder returns it minus the shift passed to :meth:`forward`. Without this skip, an
      encoder that should output a basal state would have to learn to subtract its own
      input, and until it did, every shift the globals explain would be counted twice: the
      embeddings shrink and the encoder absorbs the effects instead.
    """

    net: MLP
    condition_features: int
    subtract_shift: bool

    def features(self, counts: torch.Tensor, library_size: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self,
        counts: torch.Tensor,
        library_size: torch.Tensor,
        condition: torch.Tensor | None = None,
        shift: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(loc, scale)``; ``condition`` and ``shift`` may carry particle dims."""
        h = self.features(counts, library_size)
        if self.condition_features:
            if condition is None:
                raise ValueError("this encoder expects a condition input")
            h = concat_broadcast(h, condition)
        loc, raw_scale = self.net(h).chunk(2, dim=-1)
        if self.subtract_shift:
            if shift is None:
                raise ValueError("this encoder subtracts a shift; pass shift=")
            loc = loc - shift
        return loc, F.softplus(raw_scale) + MIN_SCALE

    @torch.no_grad()
    def rotate_latent(self, rotation: torch.Tensor, *, condition_is_latent: bool) -> None:
        """Re-express the output in the rotated basis ``z' = Q z``.

        The location is rotated exactly, and so is a condition input that is itself in
        latent coordinates (a shift). A rotated diagonal Gaussian is not diagonal, so the
        per-dimension scales are kept as they are: an approximation that training corrects
        within a few steps, since posterior scales are small and similar.
        """
        k = rotation.shape[0]
        last = self.net[-1]
        last.weight[:k] = rotation @ last.weight[:k]
        last.bias[:k] = rotation @ last.bias[:k]
        if condition_is_latent and self.condition_features:
            first = self.net[0]
            first.weight[:, -k:] = first.weight[:, -k:] @ rotation.T


class MLPBasalEncoder(GaussianEncoder):
    """:class:`GaussianEncoder` of standardised log expression by an MLP.

    Parameters
    ----------
    n_genes
        Number of genes in the input.
    latent_dim
        Dimension of the latent state.
    condition_features
        Width of the extra input; 0 for none.
    subtract_shift
        Subtract the shift from the predicted location.
    hidden
        Hidden layer widths.
    """

    def __init__(
        self,
        n_genes: int,
        latent_dim: int,
        *,
        condition_features: int = 0,
        subtract_shift: bool = False,
        hidden: Sequence[int],
    ) -> None:
        super().__init__()
        self.standardize = ExpressionStandardizer(n_genes)
        self.condition_features = condition_features
        self.subtract_shift = subtract_shift
        self.net = MLP(n_genes + condition_features, 2 * latent_dim, hidden)

    def features(self, counts: torch.Tensor, library_size: torch.Tensor) -> torch.Tensor:
        return self.standardize(counts, library_size)
