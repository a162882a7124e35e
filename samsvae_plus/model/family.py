"""The model family users pick from: SAMS-VAE, CPA-VAE, SVAE+ and a conditional VAE.

Every class shares :class:`~samsvae_plus.model.base.PerturbationModel`'s verbs (``train``,
``predict``, ``sample``, ``average_treatment_effect``, ``save``/``load``) and its one
training loop; each only says how to build its Pyro model and guide.

| class | latent shift | masks | variational families (``guide=``) |
|---|---|---|---|
| ``SAMSVAE`` | ``d_i (m * e)`` | Bernoulli or Beta-Bernoulli | mean_field, correlated_basal, correlated_embedding, correlated |
| ``CPAVAE`` | ``d_i e`` | fixed to 1 | mean_field, correlated_basal |
| ``SVAEPlus`` | ``d_i (m * mu)``, in the prior | Beta(1, beta_2)-Bernoulli | its own (q(z | x)) |
| ``ConditionalVAE`` | none: ``d_i`` enters the decoder | none | its own (q(z | x, d)) |
"""

from __future__ import annotations

import os
from typing import ClassVar

import anndata as ad
import numpy as np
import pandas as pd
from torch import nn

from samsvae_plus.data.encode import action_names
from samsvae_plus.data.registry import Registry, get_registry
from samsvae_plus.errors import InputError, check_choice
from samsvae_plus.model.base import PerturbationModel
from samsvae_plus.module.conditional_vae import ConditionalVAEGuide, ConditionalVAEModel
from samsvae_plus.module.guides import GUIDES, SAMSVAEGuide
from samsvae_plus.module.perturbation_prior import GeneEmbeddingPrior
from samsvae_plus.module.sams_vae import PointEmbedding, SAMSVAEModel
from samsvae_plus.nn.basal_encoder import build_basal_encoder, encoder_config, token_embedding
from samsvae_plus.nn.encoder_weights import apply_encoder_weights
from samsvae_plus.nn.transformer import TransformerBasalEncoder

PERTURBATION_PRIORS = ("normal", "gene_embedding")


def _hidden(config: dict) -> tuple[int, ...]:
    return (config["n_hidden"],) * config["n_layers"]


def _check_latent_dim(latent_dim: int) -> None:
    if latent_dim < 1:
        raise InputError(f"latent_dim must be at least 1, got {latent_dim}")


class _FamilyModel(PerturbationModel):
    """What every class of the family shares: the basal-encoder options."""

    def _init_with_encoder(
        self,
        adata: ad.AnnData,
        config: dict,
        *,
        basal_encoder: str,
        n_tokens: int | None,
        transformer: dict | None,
        encoder_weights: str | os.PathLike | None,
        gene_embedding: str | pd.DataFrame,
        gene_embedding_options: dict | None,
    ) -> None:
        """Check the encoder options, build the model, and load pretrained weights."""
        entries, weights = encoder_config(
            basal_encoder,
            n_tokens=n_tokens,
            transformer=transformer,
            encoder_weights=encoder_weights,
        )
        config.update(entries)
        if entries:
            self._token_embedding = token_embedding(
                get_registry(adata).genes, config, gene_embedding, gene_embedding_options, weights
            )
        PerturbationModel.__init__(self, adata, **config)
        self._token_embedding = None  # only needed while building
        if weights is not None:
            (encoder,) = [
                m for m in self.module.modules() if isinstance(m, TransformerBasalEncoder)
            ]
            apply_encoder_weights(encoder.body, self.registry.genes, weights)

    def _basal_encoder(
        self,
        registry: Registry,
        config: dict,
        *,
        condition_features: int = 0,
        subtract_shift: bool = False,
    ) -> nn.Module:
        return build_basal_encoder(
            registry.genes,
            config,
            _hidden(config),
            condition_features=condition_features,
            subtract_shift=subtract_shift,
            embedding=getattr(self, "_token_embedding", None),
        )


class _MaskedShiftModel(_FamilyModel):
    """Builds :class:`SAMSVAEModel` + :class:`SAMSVAEGuide` from a config (SAMS-VAE, CPA-VAE)."""

    MASKS: ClassVar[str] = "bernoulli"

    def _resolve_gene_embedding(
        self, adata: ad.AnnData, config: dict, source: str | pd.DataFrame, options: dict | None
    ) -> None:
        if config["perturbation_prior"] != "gene_embedding":
            return
        from samsvae_plus.nn.gene_embeddings import gene_embedding

        matrix, found = gene_embedding(
            action_names(get_registry(adata), self.ACTIONS), source, **(options or {})
        )
        if not found.any():
            raise InputError(
                "no perturbed gene has an embedding; pass gene_embedding= a DataFrame indexed "
                "by the perturbation names"
            )
        config["gene_embedding_dim"] = int(matrix.shape[1])
        self._gene_embedding = (matrix, found)

    def _prior(self, registry: Registry, config: dict) -> GeneEmbeddingPrior | None:
        if config["perturbation_prior"] != "gene_embedding":
            return None
        # At load the buffers are zeros here and come from the saved state.
        n = len(action_names(registry, self.ACTIONS))
        matrix, found = getattr(self, "_gene_embedding", None) or (
            np.zeros((n, config["gene_embedding_dim"]), dtype=np.float32),
            np.ones(n, dtype=bool),
        )
        return GeneEmbeddingPrior(
            matrix, found, config["latent_dim"], mask_prior=config.get("mask_prior", 0.01)
        )

    def _basal_input(self, config: dict) -> str:
        if GUIDES[config["guide"]]["sampled_shift"]:
            return "sampled_shift"
        return "expected_shift" if config["basal_sees_shift"] else "x"

    def _build(self, registry: Registry, config: dict) -> nn.ModuleDict:
        k = config["latent_dim"]
        n_actions = len(action_names(registry, self.ACTIONS))
        masks = config.get("masks", self.MASKS)
        model = SAMSVAEModel(
            registry.n_genes,
            n_actions,
            registry.n_contexts,
            k,
            masks=masks,
            mask_prior=config.get("mask_prior", 0.01),
            beta_prior=tuple(config.get("beta_prior") or (1.0, 1.0)),
            embedding_prior_scale=config["embedding_prior_scale"],
            prior=self._prior(registry, config),
            hidden=_hidden(config),
        )
        basal_input = self._basal_input(config)
        guide = SAMSVAEGuide(
            n_actions,
            k,
            self._basal_encoder(
                registry,
                config,
                condition_features=k if basal_input in ("expected_shift", "sampled_shift") else 0,
                subtract_shift=basal_input != "x",
            ),
            masks=masks,
            mask_probability_guide=config.get("mask_probability_guide", "beta"),
            embedding_given_mask=GUIDES[config["guide"]]["embedding_given_mask"],
            basal_input=basal_input,
            temperature=config.get("temperature", 0.5),
        )
        return nn.ModuleDict({"model": model, "guide": guide})


class SAMSVAE(_MaskedShiftModel):
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
        ``n_bins``, ``dropout`` (defaults in ``nn.transformer.ARCHITECTURE``).
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

    def __init__(
        self,
        adata: ad.AnnData,
        latent_dim: int = 20,
        guide: str = "mean_field",
        basal_encoder: str = "mlp",
        *,
        masks: str = "bernoulli",
        mask_prior: float = 0.01,
        beta_prior: tuple[float, float] | None = None,
        mask_probability_guide: str = "beta",
        embedding_prior_scale: float = 1.0,
        perturbation_prior: str = "normal",
        gene_embedding: str | pd.DataFrame = "go",
        gene_embedding_options: dict | None = None,
        n_tokens: int | None = None,
        transformer: dict | None = None,
        encoder_weights: str | os.PathLike | None = None,
        basal_sees_shift: bool = False,
        n_hidden: int = 128,
        n_layers: int = 2,
        temperature: float = 0.5,
    ) -> None:
        _check_latent_dim(latent_dim)
        check_choice("guide", guide, list(GUIDES))
        check_choice("masks", masks, ("bernoulli", "beta_bernoulli"))
        check_choice("mask_probability_guide", mask_probability_guide, ("beta", "point"))
        check_choice("perturbation_prior", perturbation_prior, PERTURBATION_PRIORS)
        if not 0 < mask_prior < 1:
            raise InputError(f"mask_prior must lie strictly between 0 and 1, got {mask_prior}")
        if perturbation_prior == "gene_embedding" and masks != "bernoulli":
            raise InputError("perturbation_prior='gene_embedding' needs masks='bernoulli'")
        if beta_prior is None:
            beta_prior = (1.0, (1.0 - mask_prior) / mask_prior)
        config = dict(
            latent_dim=latent_dim,
            guide=guide,
            basal_encoder=basal_encoder,
            masks=masks,
            mask_prior=mask_prior,
            beta_prior=list(beta_prior),
            mask_probability_guide=mask_probability_guide,
            embedding_prior_scale=embedding_prior_scale,
            perturbation_prior=perturbation_prior,
            basal_sees_shift=basal_sees_shift,
            n_hidden=n_hidden,
            n_layers=n_layers,
            temperature=temperature,
        )
        self._resolve_gene_embedding(adata, config, gene_embedding, gene_embedding_options)
        self._init_with_encoder(
            adata,
            config,
            basal_encoder=basal_encoder,
            n_tokens=n_tokens,
            transformer=transformer,
            encoder_weights=encoder_weights,
            gene_embedding=gene_embedding,
            gene_embedding_options=gene_embedding_options,
        )


class CPAVAE(_MaskedShiftModel):
    """CPA-VAE: SAMS-VAE with every mask fixed to 1, so ``z_i = z_basal_i + d_i e``.

    Parameters are those of :class:`SAMSVAE` that do not concern masks; ``guide`` is
    ``"mean_field"`` or ``"correlated_basal"``.
    """

    MASKS: ClassVar[str] = "fixed"

    def __init__(
        self,
        adata: ad.AnnData,
        latent_dim: int = 20,
        guide: str = "mean_field",
        basal_encoder: str = "mlp",
        *,
        embedding_prior_scale: float = 1.0,
        perturbation_prior: str = "normal",
        gene_embedding: str | pd.DataFrame = "go",
        gene_embedding_options: dict | None = None,
        n_tokens: int | None = None,
        transformer: dict | None = None,
        encoder_weights: str | os.PathLike | None = None,
        basal_sees_shift: bool = False,
        n_hidden: int = 128,
        n_layers: int = 2,
    ) -> None:
        _check_latent_dim(latent_dim)
        check_choice("guide", guide, ("mean_field", "correlated_basal"))
        check_choice("perturbation_prior", perturbation_prior, PERTURBATION_PRIORS)
        config = dict(
            latent_dim=latent_dim,
            guide=guide,
            basal_encoder=basal_encoder,
            masks="fixed",
            embedding_prior_scale=embedding_prior_scale,
            perturbation_prior=perturbation_prior,
            basal_sees_shift=basal_sees_shift,
            n_hidden=n_hidden,
            n_layers=n_layers,
        )
        self._resolve_gene_embedding(adata, config, gene_embedding, gene_embedding_options)
        self._init_with_encoder(
            adata,
            config,
            basal_encoder=basal_encoder,
            n_tokens=n_tokens,
            transformer=transformer,
            encoder_weights=encoder_weights,
            gene_embedding=gene_embedding,
            gene_embedding_options=gene_embedding_options,
        )


class SVAEPlus(_FamilyModel):
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

    def __init__(
        self,
        adata: ad.AnnData,
        latent_dim: int = 20,
        *,
        beta2: float | None = None,
        mask_probability_guide: str = "beta",
        n_hidden: int = 128,
        n_layers: int = 2,
        temperature: float = 0.5,
        basal_encoder: str = "mlp",
        gene_embedding: str | pd.DataFrame = "go",
        gene_embedding_options: dict | None = None,
        n_tokens: int | None = None,
        transformer: dict | None = None,
        encoder_weights: str | os.PathLike | None = None,
    ) -> None:
        _check_latent_dim(latent_dim)
        check_choice("mask_probability_guide", mask_probability_guide, ("beta", "point"))
        config = dict(
            latent_dim=latent_dim,
            beta2=float(latent_dim if beta2 is None else beta2),
            mask_probability_guide=mask_probability_guide,
            n_hidden=n_hidden,
            n_layers=n_layers,
            temperature=temperature,
        )
        self._init_with_encoder(
            adata,
            config,
            basal_encoder=basal_encoder,
            n_tokens=n_tokens,
            transformer=transformer,
            encoder_weights=encoder_weights,
            gene_embedding=gene_embedding,
            gene_embedding_options=gene_embedding_options,
        )

    def _build(self, registry: Registry, config: dict) -> nn.ModuleDict:
        k = config["latent_dim"]
        n_actions = len(action_names(registry, self.ACTIONS))
        point = PointEmbedding(n_actions, k)
        model = SAMSVAEModel(
            registry.n_genes,
            n_actions,
            registry.n_contexts,
            k,
            masks="beta_bernoulli",
            beta_prior=(1.0, config["beta2"]),
            embedding="point",
            point_embedding=point,
            hidden=_hidden(config),
        )
        guide = SAMSVAEGuide(
            n_actions,
            k,
            self._basal_encoder(registry, config, subtract_shift=True),
            masks="beta_bernoulli",
            mask_probability_guide=config["mask_probability_guide"],
            point_embedding=point,
            basal_input="subtract_sampled_shift",
            temperature=config["temperature"],
        )
        return nn.ModuleDict({"model": model, "guide": guide})


class ConditionalVAE(_FamilyModel):
    """Conditional VAE: ``z_i ~ N(mu_c, I)``, decoder input ``[z_i, d_i]``, ``q(z_i | x_i, d_i)``.

    The perturbation's effect is learned by the decoder, with no latent structure and no
    prior, so a gene never perturbed in training cannot be predicted.

    ``basal_encoder`` and its options (``gene_embedding``, ``gene_embedding_options``,
    ``n_tokens``, ``transformer``, ``encoder_weights``) are those of :class:`SAMSVAE`;
    the encoder reads the dosage row after pooling.
    """

    HAS_EFFECT_PRIOR: ClassVar[bool] = False

    def __init__(
        self,
        adata: ad.AnnData,
        latent_dim: int = 20,
        *,
        n_hidden: int = 128,
        n_layers: int = 2,
        basal_encoder: str = "mlp",
        gene_embedding: str | pd.DataFrame = "go",
        gene_embedding_options: dict | None = None,
        n_tokens: int | None = None,
        transformer: dict | None = None,
        encoder_weights: str | os.PathLike | None = None,
    ) -> None:
        _check_latent_dim(latent_dim)
        config = dict(latent_dim=latent_dim, n_hidden=n_hidden, n_layers=n_layers)
        self._init_with_encoder(
            adata,
            config,
            basal_encoder=basal_encoder,
            n_tokens=n_tokens,
            transformer=transformer,
            encoder_weights=encoder_weights,
            gene_embedding=gene_embedding,
            gene_embedding_options=gene_embedding_options,
        )

    def _build(self, registry: Registry, config: dict) -> nn.ModuleDict:
        k = config["latent_dim"]
        n_actions = len(action_names(registry, self.ACTIONS))
        model = ConditionalVAEModel(
            registry.n_genes, n_actions, registry.n_contexts, k, hidden=_hidden(config)
        )
        encoder = self._basal_encoder(registry, config, condition_features=n_actions)
        return nn.ModuleDict({"model": model, "guide": ConditionalVAEGuide(encoder)})
