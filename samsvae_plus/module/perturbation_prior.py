"""Priors over perturbation effects that depend on a fixed embedding of the perturbed gene.

With free priors (``e_t ~ N(0, beta^2)``, ``m_tk ~ Bernoulli(alpha)``) nothing links two
perturbations, so a gene never perturbed in training can only be predicted from the
uninformative prior. Here

    e_t ~ N(f(g_t), beta^2),    m_tk ~ Bernoulli(sigmoid(h(g_t))_k)

with ``g_t`` a fixed gene embedding (GO-derived by default) and ``f``, ``h`` small learned
networks (empirical Bayes: point estimates shared by all perturbations). Genes that are
alike in the embedding get alike prior effects, and an unseen gene is predicted from
``f(g_t)`` and ``h(g_t)``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from samsvae_plus.nn.mlp import MLP


class GeneEmbeddingPrior(nn.Module):
    """``f`` and ``h`` of the gene-embedding prior.

    Parameters
    ----------
    gene_embedding
        Perturbations x D fixed embedding (rows of genes without one are ignored).
    has_embedding
        Which rows are real embeddings; the others share one learned fallback vector.
    latent_dim
        Output width of ``f`` and ``h``.
    mask_prior
        Initial prior mask probability, so that training starts from the free prior.
    """

    def __init__(
        self,
        gene_embedding: np.ndarray,
        has_embedding: np.ndarray,
        latent_dim: int,
        *,
        mask_prior: float,
        hidden: tuple[int, ...] = (64,),
    ) -> None:
        super().__init__()
        embedding = torch.as_tensor(np.asarray(gene_embedding, dtype=np.float32))
        # Unit-scale inputs whatever the embedding's own scale.
        embedding = embedding / embedding[torch.as_tensor(has_embedding)].std().clamp_min(1e-6)
        self.register_buffer("embedding", embedding)
        self.register_buffer(
            "has_embedding", torch.as_tensor(np.asarray(has_embedding, dtype=bool))
        )
        self.fallback = nn.Parameter(torch.zeros(embedding.shape[1]))
        self.net = MLP(embedding.shape[1], 2 * latent_dim, hidden)
        self.latent_dim = latent_dim
        self.mask_logit = float(np.log(mask_prior / (1 - mask_prior)))
        with torch.no_grad():
            # Start at the free prior: zero mean effect and logit(mask_prior) everywhere.
            self.net[-1].weight.zero_()
            self.net[-1].bias.zero_()
            self.reset_mask_head()

    @torch.no_grad()
    def reset_mask_head(self) -> None:
        """Prior mask probability back to ``mask_prior`` for every gene."""
        self.net[-1].weight[self.latent_dim :] = 0.0
        self.net[-1].bias[self.latent_dim :] = self.mask_logit

    def inputs(self) -> torch.Tensor:
        return torch.where(self.has_embedding[:, None], self.embedding, self.fallback)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Prior embedding means and mask logits, both perturbations x latent dims."""
        loc, logits = self.net(self.inputs()).chunk(2, dim=-1)
        return loc, logits

    @torch.no_grad()
    def rotate_latent(self, rotation: torch.Tensor) -> None:
        """Rotate the prior mean ``f``. The mask head ``h`` restarts at the free prior: it
        refers to axes, and during a dense start it only learned that pinned masks are on."""
        k = rotation.shape[0]
        last = self.net[-1]
        last.weight[:k] = rotation @ last.weight[:k]
        last.bias[:k] = rotation @ last.bias[:k]
        self.reset_mask_head()
