"""SAMS-VAE: a sparse additive mechanism shift VAE, as a Pyro program.

For cell ``i`` with dosage row ``d_i`` over single-gene perturbations,

    m_tk ~ Bernoulli(alpha),  e_tk ~ Normal(0, beta**2)          (global)
    z_basal_i ~ Normal(mu_{c_i}, I)                               (local)
    z_i = z_basal_i + d_i (m * e)
    x_i ~ NB(l_i * softmax(decoder(z_i)), theta)

``mu_c`` is a learned prior mean per context (cell type), a point estimate. With one
context it only re-centres the latent space; with several it lets
:meth:`~samsvae_plus.model.SAMSVAE.sample` draw cells of a chosen context.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from samsvae_plus.data.loaders import Batch
from samsvae_plus.models.likelihood import CountLikelihood


def latent_shift(dosage: torch.Tensor, mask: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
    """``d_i (m * e)`` for every cell; broadcasts over leading particle dimensions."""
    return dosage @ (mask * embedding)


class SAMSVAEModel(PyroModule):
    """The SAMS-VAE generative model ``p(x, z_basal, m, e)``.

    Parameters
    ----------
    n_genes, n_perturbations, n_contexts, latent_dim
        Sizes of the data and of the latent space.
    mask_prior
        ``alpha``, the prior probability that a perturbation acts on a latent dimension.
    embedding_prior_scale
        ``beta``, the prior standard deviation of the embedding entries.
    hidden
        Hidden widths of the decoder.
    """

    def __init__(
        self,
        n_genes: int,
        n_perturbations: int,
        n_contexts: int,
        latent_dim: int,
        *,
        mask_prior: float = 0.01,
        embedding_prior_scale: float = 1.0,
        hidden: Sequence[int] = (128, 128),
    ) -> None:
        super().__init__()
        if not 0 < mask_prior < 1:
            raise ValueError(f"mask_prior must lie in (0, 1), got {mask_prior}")
        if embedding_prior_scale <= 0:
            raise ValueError(f"embedding_prior_scale must be positive, got {embedding_prior_scale}")
        self.n_perturbations = n_perturbations
        self.latent_dim = latent_dim
        self.register_buffer("mask_prior", torch.tensor(float(mask_prior)))
        self.register_buffer("embedding_prior_scale", torch.tensor(float(embedding_prior_scale)))
        self.basal_loc = nn.Parameter(torch.zeros(n_contexts, latent_dim))
        self.likelihood = CountLikelihood(latent_dim, n_genes, hidden)

    def sample_globals(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample the masks and embeddings, both perturbations x latent dims."""
        shape = (self.n_perturbations, self.latent_dim)
        mask = pyro.sample("mask", dist.Bernoulli(probs=self.mask_prior).expand(shape).to_event(2))
        embedding = pyro.sample(
            "embedding", dist.Normal(0.0, self.embedding_prior_scale).expand(shape).to_event(2)
        )
        return mask, embedding

    @torch.no_grad()
    def rotate_latent(self, rotation: torch.Tensor) -> None:
        """Re-express the model in the rotated latent basis ``z' = Q z``.

        The likelihood and the isotropic priors of ``z_basal`` and ``e`` are unchanged by a
        rotation; only the mask prior, which counts active coordinates, sees the basis.
        """
        self.basal_loc.copy_(self.basal_loc @ rotation.T)
        self.likelihood.rotate_latent(rotation)

    def forward(self, batch: Batch, n_cells: int) -> torch.Tensor:
        mask, embedding = self.sample_globals()
        shift = latent_shift(batch.dosage, mask, embedding)
        with pyro.plate("cells", n_cells, subsample=batch.index):
            z_basal = pyro.sample(
                "z_basal", dist.Normal(self.basal_loc[batch.context], 1.0).to_event(1)
            )
            return self.likelihood(z_basal + shift, batch)
