"""The basal-encoder options every model of the family shares
(:class:`~samsvae_plus.nn.encoder_options.EncoderOptions`), checked, resolved and turned
into networks.

``basal_encoder="mlp"`` reads the standardised expression of every gene;
``"transformer"`` reads each cell's most expressed genes as tokens
(:mod:`samsvae_plus.nn.transformer`), with gene vectors from ``gene_embedding`` and
optionally pretrained weights (``encoder_weights``). Only the transformer adds entries to
a model's config, so the configs of MLP models are unchanged.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from samsvae_plus.errors import InputError, check_choice
from samsvae_plus.nn.encoder_options import (
    ARCHITECTURE,
    BASAL_ENCODERS,
    DEFAULT_TOKENS,
    MAX_TOKENS,
    EncoderOptions,
)
from samsvae_plus.nn.encoder_weights import apply_encoder_weights, read_encoder_weights
from samsvae_plus.nn.encoders import MLPBasalEncoder
from samsvae_plus.nn.gene_embeddings import gene_embedding
from samsvae_plus.nn.transformer import TransformerBasalEncoder


def check_n_tokens(n_tokens) -> int:
    if (
        isinstance(n_tokens, bool)
        or not isinstance(n_tokens, numbers.Integral)
        or not 1 <= n_tokens <= MAX_TOKENS
    ):
        raise InputError(f"n_tokens must be an integer from 1 to {MAX_TOKENS}, got {n_tokens!r}")
    return int(n_tokens)


def check_architecture(transformer: dict) -> dict:
    """``ARCHITECTURE`` updated with ``transformer``, each entry checked."""
    if not isinstance(transformer, dict):
        raise InputError(
            f"transformer must be a dict of {sorted(ARCHITECTURE)}, got {transformer!r}"
        )
    unknown = sorted(set(transformer) - set(ARCHITECTURE))
    if unknown:
        raise InputError(
            f"transformer option {unknown[0]!r} is not available; choose from {sorted(ARCHITECTURE)}"
        )
    architecture = {**ARCHITECTURE, **transformer}
    for name in ("d_model", "n_heads", "n_layers", "n_bins"):
        value = architecture[name]
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise InputError(f"transformer {name} must be a positive integer, got {value!r}")
    if architecture["n_bins"] < 2:
        raise InputError(f"transformer n_bins must be at least 2, got {architecture['n_bins']}")
    if architecture["d_model"] % architecture["n_heads"]:
        raise InputError(
            f"transformer d_model ({architecture['d_model']}) must be a multiple of n_heads "
            f"({architecture['n_heads']})"
        )
    dropout = architecture["dropout"]
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
        raise InputError(f"transformer dropout must lie in [0, 1), got {dropout!r}")
    return {k: (float(v) if k == "dropout" else int(v)) for k, v in architecture.items()}


@dataclass(frozen=True)
class EncoderInputs:
    """What a transformer is built from besides its options: the fixed gene embedding of
    its tokens (``(matrix, found)``) and any pretrained weights read from the file."""

    embedding: tuple[np.ndarray, np.ndarray]
    weights: dict | None


def resolve_encoder(
    options: EncoderOptions, genes: Sequence[str]
) -> tuple[EncoderOptions, EncoderInputs | None]:
    """Check the options; for a transformer, read the pretrained weights and the gene
    embedding of its tokens.

    Returns the options a configuration keeps (for a transformer: the architecture and
    token count used, the embedding source by name, ``"table"`` for a DataFrame, and its
    width; for an MLP the defaults, since nothing else applies) and the inputs the
    transformer is built from (None for an MLP). With ``encoder_weights`` the architecture,
    and by default ``n_tokens``, come from the file, so ``transformer`` must not be given
    as well.
    """
    check_choice("basal_encoder", options.basal_encoder, BASAL_ENCODERS)
    given = {
        "n_tokens": options.n_tokens,
        "transformer": options.transformer,
        "encoder_weights": options.encoder_weights,
    }
    if options.basal_encoder == "mlp":
        for name, value in given.items():
            if value is not None:
                raise InputError(
                    f"{name}= applies to basal_encoder='transformer'; drop it or pass "
                    "basal_encoder='transformer'"
                )
        return EncoderOptions(), None
    weights = None
    n_tokens = options.n_tokens
    if options.encoder_weights is not None:
        weights = read_encoder_weights(options.encoder_weights)
        if options.transformer is not None:
            raise InputError(
                "encoder_weights= fixes the architecture; drop transformer= (the file's is used)"
            )
        architecture = check_architecture(weights["architecture"])
        n_tokens = weights["n_tokens"] if n_tokens is None else n_tokens
    else:
        architecture = check_architecture(options.transformer or {})
    n_tokens = check_n_tokens(DEFAULT_TOKENS if n_tokens is None else n_tokens)
    source = options.gene_embedding
    if weights is not None and isinstance(source, str) and source != weights["gene_embedding"]:
        raise InputError(
            f"the encoder weights were pretrained with gene_embedding="
            f"{weights['gene_embedding']!r}; pass the same source, not {source!r}"
        )
    matrix, found = gene_embedding(list(genes), source, **(options.gene_embedding_options or {}))
    resolved = EncoderOptions(
        basal_encoder="transformer",
        gene_embedding=source if isinstance(source, str) else "table",
        n_tokens=n_tokens,
        transformer=architecture,
        # provenance only: loading a saved model reads its own weights, not this file
        encoder_weights=None if options.encoder_weights is None else str(options.encoder_weights),
        token_embedding_dim=int(matrix.shape[1]),
    )
    return resolved, EncoderInputs((matrix, found), weights)


def build_basal_encoder(
    genes: Sequence[str],
    latent_dim: int,
    hidden: Sequence[int],
    options: EncoderOptions,
    inputs: EncoderInputs | None = None,
    *,
    condition_features: int = 0,
    subtract_shift: bool = False,
) -> MLPBasalEncoder | TransformerBasalEncoder:
    """The encoder resolved ``options`` ask for. A transformer built without ``inputs`` (for
    loading) starts with a zero gene embedding and gets it from the saved state; with them
    it takes the embedding and any pretrained weights."""
    if options.basal_encoder == "mlp":
        return MLPBasalEncoder(
            len(genes),
            latent_dim,
            condition_features=condition_features,
            subtract_shift=subtract_shift,
            hidden=hidden,
        )
    encoder = TransformerBasalEncoder(
        genes,
        latent_dim,
        options.token_embedding_dim,
        condition_features=condition_features,
        subtract_shift=subtract_shift,
        hidden=hidden,
        n_tokens=options.n_tokens,
        **options.transformer,
    )
    if inputs is not None:
        encoder.body.genes.set_embedding(*inputs.embedding)
        if inputs.weights is not None:
            apply_encoder_weights(encoder.body, genes, inputs.weights)
    return encoder
