"""The model family users pick from: SAMS-VAE, CPA-VAE, SVAE+ and a conditional VAE.

Every class shares :class:`~samsvae_plus.model.base.PerturbationModel`'s verbs (``train``,
``predict``, ``sample``, ``average_treatment_effect``, ``save``/``load``) and its one
training loop; each names its configuration (:mod:`samsvae_plus.module.config`, which gives
its keyword arguments and their defaults) and says how to build its Pyro model and guide.

| class | latent shift | masks | variational families (``guide=``) |
|---|---|---|---|
| ``SAMSVAE`` | ``d_i (m * e)`` | Bernoulli or Beta-Bernoulli | mean_field, correlated_basal, correlated_embedding, correlated |
| ``CPAVAE`` | ``d_i e`` | fixed to 1 | mean_field, correlated_basal |
| ``SVAEPlus`` | ``d_i (m * mu)``, in the prior | Beta(1, beta_2)-Bernoulli | its own (q(z | x)) |
| ``ConditionalVAE`` | none: ``d_i`` enters the decoder | none | its own (q(z | x, d)) |
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
from torch import nn

from samsvae_plus.data.encode import action_names
from samsvae_plus.data.registry import Registry
from samsvae_plus.errors import InputError
from samsvae_plus.model.base import PerturbationModel
from samsvae_plus.module.conditional_vae import ConditionalVAEGuide, ConditionalVAEModel
from samsvae_plus.module.config import (
    GUIDES,
    ConditionalVAEConfig,
    CPAVAEConfig,
    SAMSVAEConfig,
    SVAEPlusConfig,
)
from samsvae_plus.module.guides import SAMSVAEGuide
from samsvae_plus.module.perturbation_prior import GeneEmbeddingPrior
from samsvae_plus.module.sams_vae import PointEmbedding, SAMSVAEModel
from samsvae_plus.nn.basal_encoder import EncoderInputs, build_basal_encoder, resolve_encoder
from samsvae_plus.nn.gene_embeddings import gene_embedding

# SAMSVAEModel and SAMSVAEGuide keep a Bernoulli mask prior, an embedding prior scale and a
# relaxation temperature as buffers whatever their masks and embeddings. Models that read
# none of them (CPA-VAE's fixed masks, SVAE+'s point embeddings) fill them with SAMS-VAE's
# defaults, as they always have, so that their saved state dicts do not change.
_UNREAD = SAMSVAEConfig
# CPA-VAE's Beta prior, read by nothing either, has always been flat.
_UNREAD_BETA_PRIOR = (1.0, 1.0)


@dataclass(frozen=True)
class BuildInputs:
    """What a new model is built from besides its configuration: the transformer's gene
    embedding and pretrained weights, and the gene-embedding prior's embedding
    (``(matrix, found)``), all read from files or tables the options name."""

    encoder: EncoderInputs | None = None
    prior_embedding: tuple[np.ndarray, np.ndarray] | None = None


def _hidden(config) -> tuple[int, ...]:
    return (config.n_hidden,) * config.n_layers


class _FamilyModel(PerturbationModel):
    """What every class of the family shares: the basal encoder."""

    def _resolve(self, registry: Registry, config) -> tuple[object, BuildInputs]:
        encoder, inputs = resolve_encoder(config.encoder, registry.genes)
        return replace(config, encoder=encoder), BuildInputs(encoder=inputs)

    def _basal_encoder(
        self,
        registry: Registry,
        config,
        inputs: BuildInputs | None,
        *,
        condition_features: int = 0,
        subtract_shift: bool = False,
    ) -> nn.Module:
        return build_basal_encoder(
            registry.genes,
            config.latent_dim,
            _hidden(config),
            config.encoder,
            None if inputs is None else inputs.encoder,
            condition_features=condition_features,
            subtract_shift=subtract_shift,
        )


class _MaskedShiftModel(_FamilyModel):
    """Builds :class:`SAMSVAEModel` + :class:`SAMSVAEGuide` from a config (SAMS-VAE, CPA-VAE)."""

    def _mask_options(self, config) -> dict:
        """The masks' settings of model and guide."""
        raise NotImplementedError

    def _resolve(self, registry: Registry, config) -> tuple[object, BuildInputs]:
        prior = None
        if config.perturbation_prior == "gene_embedding":
            prior = gene_embedding(
                action_names(registry, self.ACTIONS),
                config.encoder.gene_embedding,
                **(config.encoder.gene_embedding_options or {}),
            )
            if not prior[1].any():
                raise InputError(
                    "no perturbed gene has an embedding; pass gene_embedding= a DataFrame "
                    "indexed by the perturbation names"
                )
            config = replace(config, gene_embedding_dim=int(prior[0].shape[1]))
        config, inputs = super()._resolve(registry, config)
        return config, replace(inputs, prior_embedding=prior)

    def _prior(
        self, registry: Registry, config, inputs: BuildInputs | None, mask_prior: float
    ) -> GeneEmbeddingPrior | None:
        if config.perturbation_prior != "gene_embedding":
            return None
        # At load the buffers are zeros here and come from the saved state.
        n = len(action_names(registry, self.ACTIONS))
        matrix, found = (inputs and inputs.prior_embedding) or (
            np.zeros((n, config.gene_embedding_dim), dtype=np.float32),
            np.ones(n, dtype=bool),
        )
        return GeneEmbeddingPrior(matrix, found, config.latent_dim, mask_prior=mask_prior)

    def _basal_input(self, config) -> str:
        if GUIDES[config.guide]["sampled_shift"]:
            return "sampled_shift"
        return "expected_shift" if config.basal_sees_shift else "x"

    def _build(self, registry: Registry, config, inputs: BuildInputs | None) -> nn.ModuleDict:
        k = config.latent_dim
        n_actions = len(action_names(registry, self.ACTIONS))
        masks = self._mask_options(config)
        model = SAMSVAEModel(
            registry.n_genes,
            n_actions,
            registry.n_contexts,
            k,
            masks=masks["masks"],
            mask_prior=masks["mask_prior"],
            beta_prior=masks["beta_prior"],
            embedding_prior_scale=config.embedding_prior_scale,
            prior=self._prior(registry, config, inputs, masks["mask_prior"]),
            hidden=_hidden(config),
        )
        basal_input = self._basal_input(config)
        guide = SAMSVAEGuide(
            n_actions,
            k,
            self._basal_encoder(
                registry,
                config,
                inputs,
                condition_features=k if basal_input in ("expected_shift", "sampled_shift") else 0,
                subtract_shift=basal_input != "x",
            ),
            masks=masks["masks"],
            mask_probability_guide=masks["mask_probability_guide"],
            embedding_given_mask=GUIDES[config.guide]["embedding_given_mask"],
            basal_input=basal_input,
            temperature=masks["temperature"],
        )
        return nn.ModuleDict({"model": model, "guide": guide})


class SAMSVAE(_MaskedShiftModel, register=True):
    """Sparse additive mechanism shift VAE.

    ``z_i = z_basal_i + sum_t d_it (m_t * e_t)``; counts are negative binomial with the
    cell's library size.

    Parameters
    ----------
    adata
        An AnnData registered with :func:`samsvae_plus.setup_anndata`.
    latent_dim
        Dimension of the latent space.
    guide
        Variational family: ``"mean_field"``, ``"correlated_basal"`` (q(z_basal) reads the
        sampled shift), ``"correlated_embedding"`` (q(e_t | m_t, t)) or ``"correlated"``.
    basal_encoder
        Encoder of q(z_basal): ``"mlp"`` (standardised expression of every gene) or
        ``"transformer"`` (a transformer over tokens of each cell's most expressed genes,
        :mod:`samsvae_plus.nn.transformer`; it can encode cells of cell types never seen in
        training).
    masks
        ``"bernoulli"`` (``m ~ Bernoulli(mask_prior)``) or ``"beta_bernoulli"``
        (``pi ~ Beta(*beta_prior)``, ``m ~ Bernoulli(pi)``).
    mask_prior
        Prior probability ``alpha`` of a mask entry.
    beta_prior
        ``(a, b)`` of Beta-Bernoulli masks; by default mean ``mask_prior`` with ``a = 1``.
    mask_probability_guide
        ``q(pi)`` of Beta-Bernoulli masks: ``"beta"`` (learned Beta) or ``"point"``.
    embedding_prior_scale
        Prior standard deviation ``beta`` of the embeddings.
    perturbation_prior
        ``"normal"`` (free per perturbation) or ``"gene_embedding"``: the embedding and
        mask priors are learned functions of a fixed gene embedding, which predicts
        perturbations without training cells.
    gene_embedding
        Gene vectors for ``perturbation_prior="gene_embedding"`` and for the transformer's
        tokens: ``"go"`` (the shipped GO embedding, by symbol), ``"esm2"``, ``"learned"``,
        ``"random"`` or a DataFrame indexed by gene name (see
        :func:`samsvae_plus.nn.gene_embeddings.gene_embedding`).
    gene_embedding_options
        Keyword arguments of that function, e.g. ``{"fasta": ..., "checkpoint": ...,
        "cache": ...}`` for ``"esm2"``.
    n_tokens
        Transformer: genes read per cell, 1 to 2048 (default 256).
    transformer
        Transformer architecture, a dict of ``d_model``, ``n_heads``, ``n_layers``,
        ``n_bins``, ``dropout`` (defaults in ``nn.encoder_options.ARCHITECTURE``).
    encoder_weights
        Transformer: a file of pretrained weights (:func:`samsvae_plus.pretrain_encoder`);
        the architecture is the file's, and weights transfer by gene symbol.
    basal_sees_shift
        With the mean-field and correlated-embedding guides: the z_basal encoder also
        reads the cell's expected shift under the variational means. The correlated-basal
        guides always read the sampled shift.
    n_hidden, n_layers
        Width and depth of the encoder and decoder MLPs.
    temperature
        Relaxation temperature of the straight-through mask samples.
    """

    CONFIG: ClassVar[type[SAMSVAEConfig]] = SAMSVAEConfig
    POSITIONAL: ClassVar[tuple[str, ...]] = ("latent_dim", "guide", "basal_encoder")

    def _mask_options(self, config: SAMSVAEConfig) -> dict:
        return dict(
            masks=config.masks,
            mask_prior=config.mask_prior,
            beta_prior=config.beta_prior,
            mask_probability_guide=config.mask_probability_guide,
            temperature=config.temperature,
        )


class CPAVAE(_MaskedShiftModel, register=True):
    """CPA-VAE: SAMS-VAE with every mask fixed to 1, so ``z_i = z_basal_i + d_i e``.

    Parameters are those of :class:`SAMSVAE` that do not concern masks; ``guide`` is
    ``"mean_field"`` or ``"correlated_basal"``.
    """

    CONFIG: ClassVar[type[CPAVAEConfig]] = CPAVAEConfig
    POSITIONAL: ClassVar[tuple[str, ...]] = ("latent_dim", "guide", "basal_encoder")

    def _mask_options(self, config: CPAVAEConfig) -> dict:
        return dict(
            masks=config.masks,
            mask_prior=_UNREAD.mask_prior,
            beta_prior=_UNREAD_BETA_PRIOR,
            mask_probability_guide=_UNREAD.mask_probability_guide,
            temperature=_UNREAD.temperature,
        )


class SVAEPlus(_FamilyModel, register=True):
    """SVAE+ (Lopez et al. 2023): sparse mechanism shifts in the prior of one latent state.

    ``pi_tk ~ Beta(1, beta_2)``, ``m_tk ~ Bernoulli(pi_tk)``, a learned point embedding
    ``mu_t`` without a prior, ``z_i ~ N(mu_c + m_t * mu_t, I)`` (``mu_c`` alone for
    controls), and ``q(z_i | x_i)`` from ``x`` only.

    SVAE+ allows one perturbation per cell: every condition, combinations included, is its
    own action with its own mask and embedding, so a combination is not the sum of its
    genes and a condition never seen in training cannot be predicted.

    Parameters
    ----------
    adata
        An AnnData registered with :func:`samsvae_plus.setup_anndata`.
    latent_dim
        Dimension of the latent space.
    beta2
        ``beta_2`` of the Beta(1, beta_2) mask-probability prior; by default ``latent_dim``
        (prior mean mask density ``1 / (1 + latent_dim)``).
    mask_probability_guide
        ``q(pi)``: ``"beta"`` (learned Beta) or ``"point"``.
    basal_encoder, gene_embedding, gene_embedding_options, n_tokens, transformer, encoder_weights
        The encoder of ``q(z | x)``, as for :class:`SAMSVAE`.
    """

    ACTIONS: ClassVar[str] = "conditions"
    HAS_EFFECT_PRIOR: ClassVar[bool] = False

    CONFIG: ClassVar[type[SVAEPlusConfig]] = SVAEPlusConfig
    POSITIONAL: ClassVar[tuple[str, ...]] = ("latent_dim",)

    def _build(
        self, registry: Registry, config: SVAEPlusConfig, inputs: BuildInputs | None
    ) -> nn.ModuleDict:
        k = config.latent_dim
        n_actions = len(action_names(registry, self.ACTIONS))
        point = PointEmbedding(n_actions, k)
        model = SAMSVAEModel(
            registry.n_genes,
            n_actions,
            registry.n_contexts,
            k,
            masks="beta_bernoulli",
            mask_prior=_UNREAD.mask_prior,
            beta_prior=(1.0, config.beta2),
            embedding_prior_scale=_UNREAD.embedding_prior_scale,
            embedding="point",
            point_embedding=point,
            hidden=_hidden(config),
        )
        guide = SAMSVAEGuide(
            n_actions,
            k,
            self._basal_encoder(registry, config, inputs, subtract_shift=True),
            masks="beta_bernoulli",
            mask_probability_guide=config.mask_probability_guide,
            point_embedding=point,
            basal_input="subtract_sampled_shift",
            temperature=config.temperature,
        )
        return nn.ModuleDict({"model": model, "guide": guide})


class ConditionalVAE(_FamilyModel, register=True):
    """Conditional VAE: ``z_i ~ N(mu_c, I)``, decoder input ``[z_i, d_i]``, ``q(z_i | x_i, d_i)``.

    The perturbation's effect is learned by the decoder, with no latent structure and no
    prior, so a gene never perturbed in training cannot be predicted.

    ``basal_encoder`` and its options (``gene_embedding``, ``gene_embedding_options``,
    ``n_tokens``, ``transformer``, ``encoder_weights``) are those of :class:`SAMSVAE`;
    the encoder reads the dosage row after pooling.
    """

    HAS_EFFECT_PRIOR: ClassVar[bool] = False
    LATENT_SHIFT: ClassVar[bool] = False

    CONFIG: ClassVar[type[ConditionalVAEConfig]] = ConditionalVAEConfig
    POSITIONAL: ClassVar[tuple[str, ...]] = ("latent_dim",)

    def _build(
        self, registry: Registry, config: ConditionalVAEConfig, inputs: BuildInputs | None
    ) -> nn.ModuleDict:
        k = config.latent_dim
        n_actions = len(action_names(registry, self.ACTIONS))
        model = ConditionalVAEModel(
            registry.n_genes, n_actions, registry.n_contexts, k, hidden=_hidden(config)
        )
        encoder = self._basal_encoder(registry, config, inputs, condition_features=n_actions)
        return nn.ModuleDict({"model": model, "guide": ConditionalVAEGuide(encoder)})
