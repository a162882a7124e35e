"""SAMS-VAE and its close relatives, as one Pyro generative model.

For cell ``i`` with dosage row ``d_i`` over perturbations,

    m_tk ~ Bernoulli(alpha)              (or pi_tk ~ Beta(a, b), m_tk ~ Bernoulli(pi_tk))
    e_tk ~ Normal(0, beta**2)            (or a point estimate, or a gene-embedding prior)
    z_basal_i ~ Normal(mu_{c_i}, I)
    z_i = z_basal_i + d_i (m * e)
    x_i ~ NB(l_i * softmax(decoder(z_i)), theta)

The options give the family's rows:

- ``masks="bernoulli"``: SAMS-VAE; ``"beta_bernoulli"``: Beta-Bernoulli masks;
  ``"fixed"``: every mask is 1, which is CPA-VAE (``z = z_basal + D e``);
- ``embedding="normal"``: SAMS-VAE's prior; ``"point"``: a learned point embedding with no
  prior, as in SVAE+ (where, with Beta(1, beta_2) masks, ``z_i ~ N(mu_c + d_i (m * e), I)``
  is the same distribution written with ``z_basal = z - shift``);
- ``prior``: a :class:`~samsvae_plus.module.perturbation_prior.GeneEmbeddingPrior` makes the
  Normal embedding prior and the Bernoulli mask prior functions of a gene embedding.

``mu_c`` is a learned prior mean per context (cell type), a point estimate.
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
from samsvae_plus.module.perturbation_prior import GeneEmbeddingPrior

MASK_MODELS = ("bernoulli", "beta_bernoulli", "fixed")
EMBEDDING_MODELS = ("normal", "point")


def latent_shift(dosage: torch.Tensor, mask: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
    """``d_i (m * e)`` for every cell; broadcasts over leading particle dimensions.

    Under vectorized particles the globals are sampled outside the cell plate, so their
    batch shape is ``(particles, 1)``: the 1 is the cell plate's slot. The cells come from
    the rows of ``dosage``, so that slot is dropped and the shift is ``(particles, cells,
    latent)``, aligned with ``z_basal``. Kept, ``dosage @`` would give ``(particles, 1,
    cells, latent)`` and every particle's ``z_basal`` would be paired with every particle's
    globals (``particles**2`` likelihood terms, weighted ``particles`` times too much).
    """
    effect = mask * embedding
    if effect.dim() > 2 and effect.shape[-3] == 1:
        effect = effect.squeeze(-3)
    return dosage @ effect


class PointEmbedding(nn.Module):
    """A learned perturbations x latent matrix without a prior (SVAE+'s ``mu_t``).

    Model and guide hold the same instance: the guide needs the shift to return a basal
    state, and a point estimate has no variational distribution to sample it from.
    """

    def __init__(self, n_perturbations: int, latent_dim: int, scale: float = 0.1) -> None:
        super().__init__()
        self.weight = nn.Parameter(scale * torch.randn(n_perturbations, latent_dim))

    def forward(self) -> torch.Tensor:
        return self.weight

    def per_perturbation_parameters(self) -> list[nn.Parameter]:
        return [self.weight]

    @torch.no_grad()
    def rotate_latent(self, rotation: torch.Tensor) -> None:
        self.weight.copy_(self.weight @ rotation.T)


class SAMSVAEModel(LocalPyroModule):
    """The generative model ``p(x, z_basal, m, e)`` of SAMS-VAE, CPA-VAE and SVAE+.

    Parameters
    ----------
    n_genes, n_perturbations, n_contexts, latent_dim
        Sizes of the data and of the latent space.
    masks
        ``"bernoulli"``, ``"beta_bernoulli"`` or ``"fixed"`` (all ones).
    mask_prior
        ``alpha`` of Bernoulli masks.
    beta_prior
        ``(a, b)`` of Beta-Bernoulli masks.
    embedding
        ``"normal"`` (prior ``N(0, beta^2)``) or ``"point"`` (needs ``point_embedding``).
    embedding_prior_scale
        ``beta``.
    prior
        Optional gene-embedding prior for Normal embeddings and Bernoulli masks.
    point_embedding
        The shared :class:`PointEmbedding` when ``embedding="point"``.
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
        masks: str,
        mask_prior: float,
        beta_prior: tuple[float, float],
        embedding_prior_scale: float,
        hidden: Sequence[int],
        embedding: str = "normal",
        prior: GeneEmbeddingPrior | None = None,
        point_embedding: PointEmbedding | None = None,
    ) -> None:
        super().__init__()
        if masks not in MASK_MODELS or embedding not in EMBEDDING_MODELS:
            raise ValueError(
                f"masks must be one of {MASK_MODELS} and embedding one of {EMBEDDING_MODELS}"
            )
        if (embedding == "point") != (point_embedding is not None):
            raise ValueError("a point embedding needs point_embedding=, and only then")
        if prior is not None and (embedding != "normal" or masks == "beta_bernoulli"):
            raise ValueError(
                "the gene-embedding prior applies to Normal embeddings and Bernoulli or fixed masks"
            )
        self.n_perturbations = n_perturbations
        self.latent_dim = latent_dim
        self.masks = masks
        self.embedding = embedding
        self.register_buffer("mask_prior", torch.tensor(float(mask_prior)))
        self.register_buffer("beta_prior", torch.tensor([float(v) for v in beta_prior]))
        self.register_buffer("embedding_prior_scale", torch.tensor(float(embedding_prior_scale)))
        self.prior = prior
        self.point_embedding = point_embedding
        self.basal_loc = nn.Parameter(torch.zeros(n_contexts, latent_dim))
        self.likelihood = CountLikelihood(latent_dim, n_genes, hidden)

    def prior_mask_probabilities(self) -> torch.Tensor:
        """Prior ``P(m_tk = 1)``, perturbations x latent dims (the Beta mean for
        Beta-Bernoulli masks, 1 for fixed ones)."""
        shape = (self.n_perturbations, self.latent_dim)
        if self.masks == "fixed":
            return torch.ones(shape, device=self.basal_loc.device)
        if self.masks == "beta_bernoulli":
            a, b = self.beta_prior
            return (a / (a + b)).expand(shape)
        if self.prior is not None:
            return torch.sigmoid(self.prior()[1])
        return self.mask_prior.expand(shape)

    def prior_global_means(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Prior means of the masks (:meth:`prior_mask_probabilities`) and of the embeddings
        (0, the gene-embedding prior's location, or the point embedding itself)."""
        if self.embedding == "point":
            embedding = self.point_embedding()
        elif self.prior is not None:
            embedding = self.prior()[0]
        else:
            embedding = torch.zeros(
                self.n_perturbations, self.latent_dim, device=self.basal_loc.device
            )
        return self.prior_mask_probabilities(), embedding

    def log_proportions(
        self,
        z_basal: torch.Tensor,
        dosage: torch.Tensor,
        global_values: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        """``log softmax(decoder(z_basal + d (m * e)))``: the expression proportions of cells
        with basal states ``z_basal`` under ``dosage``, given masks and embeddings
        ``global_values`` (the negative binomial's mean over the library size)."""
        return self.likelihood.decoder(z_basal + latent_shift(dosage, *global_values))

    def sample_globals(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample (or return) the masks and embeddings, both perturbations x latent dims."""
        shape = (self.n_perturbations, self.latent_dim)
        prior_loc, prior_logits = self.prior() if self.prior is not None else (None, None)
        if self.masks == "fixed":
            mask = torch.ones(shape, device=self.basal_loc.device)
        elif self.masks == "beta_bernoulli":
            a, b = self.beta_prior
            probability = pyro.sample("mask_prob", dist.Beta(a, b).expand(shape).to_event(2))
            mask = pyro.sample("mask", dist.Bernoulli(probs=probability).to_event(2))
        elif prior_logits is not None:
            mask = pyro.sample("mask", dist.Bernoulli(logits=prior_logits).to_event(2))
        else:
            mask = pyro.sample(
                "mask", dist.Bernoulli(probs=self.mask_prior).expand(shape).to_event(2)
            )
        if self.embedding == "point":
            return mask, self.point_embedding()
        loc = (
            prior_loc if prior_loc is not None else torch.zeros(shape, device=self.basal_loc.device)
        )
        embedding = pyro.sample(
            "embedding", dist.Normal(loc, self.embedding_prior_scale).to_event(2)
        )
        return mask, embedding

    def forward(self, batch: Batch, n_cells: int) -> torch.Tensor:
        mask, embedding = self.sample_globals()
        shift = latent_shift(batch.dosage, mask, embedding)
        with pyro.plate("cells", n_cells, subsample=batch.index):
            z_basal = pyro.sample(
                "z_basal", dist.Normal(self.basal_loc[batch.context], 1.0).to_event(1)
            )
            return self.likelihood(z_basal + shift, batch)

    @torch.no_grad()
    def rotate_latent(self, rotation: torch.Tensor) -> None:
        """Re-express the model in the rotated latent basis ``z' = Q z``.

        The likelihood and the isotropic priors of ``z_basal`` and ``e`` are unchanged by a
        rotation; only the mask prior, which counts active coordinates, sees the basis.
        """
        self.basal_loc.copy_(self.basal_loc @ rotation.T)
        self.likelihood.rotate_latent(rotation)
        if self.point_embedding is not None:
            self.point_embedding.rotate_latent(rotation)
        if self.prior is not None:
            self.prior.rotate_latent(rotation)
