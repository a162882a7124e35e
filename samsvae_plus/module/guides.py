"""Variational families for SAMS-VAE and its relatives.

One guide class covers the family's variational distributions; its options are the
families the issue names (:data:`~samsvae_plus.module.config.GUIDES` maps each name to
them):

- ``"mean_field"``: ``q(m) q(e) prod_i q(z_basal_i | x_i)``. With ``basal_sees_shift`` the
  encoder also reads the cell's *expected* shift ``d_i (E[m] * E[e])`` under the variational
  parameters; it is deterministic, so the family stays fully factorised;
- ``"correlated_basal"``: ``q(z_basal_i | x_i, d_i (m * e))`` reads the shift *sampled* in
  this particle;
- ``"correlated_embedding"``: ``q(e_t | m_t, t)`` from one network of ``[m_t, onehot(t)]``,
  after ``m`` is sampled;
- ``"correlated"``: both, sampled in the order ``m``, ``e | m``, ``z_basal | x, shift``.

Masks are sampled by a straight-through relaxed Bernoulli scored with the discrete pmf.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from samsvae_plus.data.loaders import Batch
from samsvae_plus.module.distributions import StraightThroughBernoulli
from samsvae_plus.module.local_params import LocalPyroModule
from samsvae_plus.module.sams_vae import PointEmbedding, latent_shift
from samsvae_plus.nn.mlp import MLP

# Logit of a pinned mask: sigmoid(12) = 1 - 6e-6.
PINNED_LOGIT = 12.0
BASAL_INPUTS = ("x", "expected_shift", "sampled_shift", "subtract_sampled_shift")


def _inverse_softplus(value: float) -> float:
    return float(torch.log(torch.expm1(torch.tensor(value))))


class EmbeddingGivenMask(nn.Module):
    """Correction to ``q(e_t)``'s location and raw scale from ``MLP([m_t, onehot(t)])``.

    The one-hot input is realised as a per-perturbation row added after the first layer
    (the same map as a linear layer on ``onehot(t)``, without the T x T input). The last
    layer starts at zero, so the guide starts from its per-perturbation parameters alone.
    """

    def __init__(self, n_perturbations: int, latent_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.mask_in = nn.Linear(latent_dim, hidden)
        self.perturbation_in = nn.Parameter(torch.zeros(n_perturbations, hidden))
        self.out = MLP(hidden, 2 * latent_dim, (hidden,))
        with torch.no_grad():
            self.out[-1].weight.zero_()
            self.out[-1].bias.zero_()

    def forward(self, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.silu(self.mask_in(mask) + self.perturbation_in)
        loc, raw_scale = self.out(h).chunk(2, dim=-1)
        return loc, raw_scale

    @torch.no_grad()
    def reset(self) -> None:
        """Forget the mask dependence (used when the masks' axes change)."""
        self.out[-1].weight.zero_()
        self.out[-1].bias.zero_()


class SAMSVAEGuide(LocalPyroModule):
    """The variational distribution of every SAMS-VAE-like model.

    Parameters
    ----------
    n_perturbations, latent_dim
        Shape of the global latents.
    basal_encoder
        :class:`~samsvae_plus.nn.encoders.MLPBasalEncoder` of the local latent.
    masks
        The model's mask type: ``"bernoulli"``, ``"beta_bernoulli"`` or ``"fixed"``.
    mask_probability_guide
        For Beta-Bernoulli masks, ``q(pi)``: ``"beta"`` (learned Beta) or ``"point"``.
    point_embedding
        The model's shared point embedding (SVAE+), which then has no variational factor.
    embedding_given_mask
        ``q(e_t | m_t, t)`` instead of ``q(e_t)``.
    basal_input
        ``"x"``, ``"expected_shift"`` (x and the variational-mean shift),
        ``"sampled_shift"`` (x and this particle's shift) or ``"subtract_sampled_shift"``
        (x only; the encoder predicts the total state, SVAE+'s ``q(z | x)``).
    temperature
        Relaxation temperature of the mask's straight-through gradient.
    """

    def __init__(
        self,
        n_perturbations: int,
        latent_dim: int,
        basal_encoder: nn.Module,
        *,
        masks: str,
        mask_probability_guide: str,
        temperature: float,
        point_embedding: PointEmbedding | None = None,
        embedding_given_mask: bool = False,
        basal_input: str = "x",
        initial_mask_probability: float = 0.5,
        initial_embedding_scale: float = 0.1,
    ) -> None:
        super().__init__()
        if basal_input not in BASAL_INPUTS:
            raise ValueError(f"basal_input must be one of {BASAL_INPUTS}")
        shape = (n_perturbations, latent_dim)
        self.masks = masks
        self.mask_probability_guide = mask_probability_guide
        self.basal_input = basal_input
        self.basal_encoder = basal_encoder
        self.register_buffer("temperature", torch.tensor(float(temperature)))
        self.register_buffer("fixed_mask", torch.ones(shape))
        if masks != "fixed":
            p = torch.tensor(initial_mask_probability)
            self.mask_logits = nn.Parameter(torch.full(shape, float(torch.logit(p))))
        if masks == "beta_bernoulli":
            if mask_probability_guide == "beta":
                self.mask_prob_raw_a = nn.Parameter(torch.zeros(shape))
                self.mask_prob_raw_b = nn.Parameter(torch.zeros(shape))
            else:
                self.mask_prob_logit = nn.Parameter(torch.full(shape, -2.0))
        # Object attributes of PyroModules register submodules; keep the shared point
        # embedding out of the guide's parameters (the model owns and rotates it).
        self._point_embedding = (point_embedding,)
        if point_embedding is None:
            self.embedding_loc = nn.Parameter(initial_embedding_scale * torch.randn(shape))
            self.embedding_raw_scale = nn.Parameter(
                torch.full(shape, _inverse_softplus(initial_embedding_scale))
            )
            self.embedding_given_mask = (
                EmbeddingGivenMask(n_perturbations, latent_dim) if embedding_given_mask else None
            )
        elif embedding_given_mask:
            raise ValueError("a point embedding has no variational distribution to correlate")
        else:
            self.embedding_given_mask = None

    # ---------------------------------------------------------------- global latents
    def per_perturbation_parameters(self) -> list[nn.Parameter]:
        """The guide's free parameters, one row per perturbation (see ``parameter_groups``)."""
        own = list(self.parameters(recurse=False))
        if self.embedding_given_mask is not None:
            own.append(self.embedding_given_mask.perturbation_in)
        return own

    @property
    def learns_masks(self) -> bool:
        return self.masks != "fixed"

    def mask_probabilities(self) -> torch.Tensor:
        """``q(m_tk = 1)``, perturbations x latent dims."""
        if not self.learns_masks:
            return self.fixed_mask
        return torch.sigmoid(self.mask_logits)

    def embedding_means(self) -> torch.Tensor:
        """The embedding the masks act on, at its variational mean (all masks on)."""
        point = self._point_embedding[0]
        if point is not None:
            return point()
        loc = self.embedding_loc
        if self.embedding_given_mask is not None:
            loc = loc + self.embedding_given_mask(self.fixed_mask)[0]
        return loc

    def sample_globals(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.learns_masks:
            mask = self.fixed_mask
        else:
            if self.masks == "beta_bernoulli":
                if self.mask_probability_guide == "beta":
                    a, b = (
                        F.softplus(self.mask_prob_raw_a) + 1e-3,
                        F.softplus(self.mask_prob_raw_b) + 1e-3,
                    )
                    pyro.sample("mask_prob", dist.Beta(a, b).to_event(2))
                else:
                    pyro.sample(
                        "mask_prob", dist.Delta(torch.sigmoid(self.mask_prob_logit)).to_event(2)
                    )
            mask = pyro.sample(
                "mask",
                StraightThroughBernoulli(self.temperature, logits=self.mask_logits).to_event(2),
            )
        point = self._point_embedding[0]
        if point is not None:
            return mask, point()
        loc, raw_scale = self.embedding_loc, self.embedding_raw_scale
        if self.embedding_given_mask is not None:
            d_loc, d_raw_scale = self.embedding_given_mask(mask)
            loc, raw_scale = loc + d_loc, raw_scale + d_raw_scale
        embedding = pyro.sample("embedding", dist.Normal(loc, F.softplus(raw_scale)).to_event(2))
        return mask, embedding

    def global_means(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The masks and embeddings at their variational means, ``(q(m = 1), E[e])``.

        With ``embedding_given_mask`` the embedding mean is taken at all masks on, as
        :meth:`embedding_means` is.
        """
        return self.mask_probabilities(), self.embedding_means()

    def basal_parameters(
        self, batch: Batch, global_values: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Location and scale of ``q(z_basal | x, ...)`` for ``batch``.

        ``global_values`` are the masks and embeddings a shift input is computed from
        (sampled ones, or :meth:`global_means`); an ``"expected_shift"`` input always reads
        the variational means.
        """
        mask, embedding = global_values
        condition = shift = None
        if self.basal_input == "expected_shift":
            condition = shift = latent_shift(
                batch.dosage, self.mask_probabilities(), self.embedding_means()
            )
        elif self.basal_input in ("sampled_shift", "subtract_sampled_shift"):
            shift = latent_shift(batch.dosage, mask, embedding)
            condition = shift if self.basal_input == "sampled_shift" else None
        return self.basal_encoder(batch.counts, batch.library_size, condition, shift)

    def forward(self, batch: Batch, n_cells: int) -> None:
        global_values = self.sample_globals()
        with pyro.plate("cells", n_cells, subsample=batch.index):
            loc, scale = self.basal_parameters(batch, global_values)
            pyro.sample("z_basal", dist.Normal(loc, scale).to_event(1))

    # ---------------------------------------------------------------- dense start
    @torch.no_grad()
    def pin_masks(self, pinned: bool = True) -> None:
        """Fix every mask to 1 (a CPA-like dense phase), or release them for learning.

        Pinned logits are large enough that a sampled mask is 1 with probability 1 - 6e-6;
        they receive no gradient until released.
        """
        if pinned:
            self.mask_logits.fill_(PINNED_LOGIT)
        self.mask_logits.requires_grad_(not pinned)

    @torch.no_grad()
    def init_masks(self, active: torch.Tensor, logit: float = 3.0) -> None:
        """Masks start at ``sigmoid(logit)`` where ``active`` and ``sigmoid(-logit)`` elsewhere."""
        self.mask_logits.copy_(torch.where(active, logit, -logit))

    @torch.no_grad()
    def rotate_latent(self, rotation: torch.Tensor) -> None:
        """Re-express the guide in the rotated latent basis ``z' = Q z``.

        Embedding means rotate exactly; the variance of each new coordinate is the
        rotation-weighted sum of the old variances (the diagonal of ``Q S Q^T``). A
        mask-dependent embedding correction is folded in at all-ones masks and then
        forgotten, since the masks' axes change.
        """
        if self._point_embedding[0] is None:
            loc, raw_scale = self.embedding_loc, self.embedding_raw_scale
            if self.embedding_given_mask is not None:
                d_loc, d_raw_scale = self.embedding_given_mask(self.fixed_mask)
                loc.add_(d_loc)
                raw_scale.add_(d_raw_scale)
                self.embedding_given_mask.reset()
            loc.copy_(loc @ rotation.T)
            variance = F.softplus(raw_scale).square() @ rotation.square().T
            raw_scale.copy_(torch.log(torch.expm1(variance.sqrt())))
        self.basal_encoder.rotate_latent(rotation, condition_is_latent=self.basal_input != "x")
