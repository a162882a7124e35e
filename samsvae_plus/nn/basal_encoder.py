"""The basal-encoder options every model of the family shares, checked and turned into
config entries and networks.

``basal_encoder="mlp"`` reads the standardised expression of every gene;
``"transformer"`` reads each cell's most expressed genes as tokens
(:mod:`samsvae_plus.nn.transformer`), with gene vectors from ``gene_embedding`` and
optionally pretrained weights (``encoder_weights``). Only the transformer adds entries to
a model's config, so the configs of MLP models are unchanged.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from samsvae_plus.errors import InputError, check_choice
from samsvae_plus.nn.encoders import MLPBasalEncoder
from samsvae_plus.nn.transformer import (
    ARCHITECTURE,
    DEFAULT_TOKENS,
    MAX_TOKENS,
    TransformerBasalEncoder,
)

BASAL_ENCODERS = ("mlp", "transformer")


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


def encoder_config(
    basal_encoder: str,
    *,
    n_tokens: int | None = None,
    transformer: dict | None = None,
    encoder_weights: str | os.PathLike | None = None,
) -> tuple[dict, dict | None]:
    """Config entries of the encoder options, and the pretrained weights if any.

    With ``encoder_weights`` the architecture (and by default ``n_tokens``) comes from
    the file, so ``transformer`` must not be given as well.
    """
    check_choice("basal_encoder", basal_encoder, BASAL_ENCODERS)
    given = {"n_tokens": n_tokens, "transformer": transformer, "encoder_weights": encoder_weights}
    if basal_encoder == "mlp":
        for name, value in given.items():
            if value is not None:
                raise InputError(
                    f"{name}= applies to basal_encoder='transformer'; drop it or pass "
                    "basal_encoder='transformer'"
                )
        return {}, None
    weights = None
    if encoder_weights is not None:
        from samsvae_plus.nn.encoder_weights import read_encoder_weights

        weights = read_encoder_weights(encoder_weights)
        if transformer is not None:
            raise InputError(
                "encoder_weights= fixes the architecture; drop transformer= (the file's is used)"
            )
        architecture = check_architecture(weights["architecture"])
        n_tokens = weights["n_tokens"] if n_tokens is None else n_tokens
    else:
        architecture = check_architecture(transformer or {})
    config = {
        "basal_encoder": "transformer",
        "n_tokens": check_n_tokens(DEFAULT_TOKENS if n_tokens is None else n_tokens),
        "transformer": architecture,
        # provenance only: loading a saved model reads its own weights, not this file
        "encoder_weights": None if encoder_weights is None else str(encoder_weights),
    }
    return config, weights


def token_embedding(
    genes: Sequence[str],
    config: dict,
    source: str | pd.DataFrame,
    options: dict | None,
    weights: dict | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The fixed gene embedding of the transformer's tokens; records its source and width
    in ``config``."""
    from samsvae_plus.nn.gene_embeddings import gene_embedding

    name = source if isinstance(source, str) else "table"
    if weights is not None and isinstance(source, str) and source != weights["gene_embedding"]:
        raise InputError(
            f"the encoder weights were pretrained with gene_embedding="
            f"{weights['gene_embedding']!r}; pass the same source, not {source!r}"
        )
    matrix, found = gene_embedding(list(genes), source, **(options or {}))
    config["gene_embedding"] = name
    config["token_embedding_dim"] = int(matrix.shape[1])
    return matrix, found


def build_basal_encoder(
    genes: Sequence[str],
    config: dict,
    hidden: Sequence[int],
    *,
    condition_features: int = 0,
    subtract_shift: bool = False,
    embedding: tuple[np.ndarray, np.ndarray] | None = None,
) -> MLPBasalEncoder | TransformerBasalEncoder:
    """The encoder ``config`` asks for. A transformer built for loading (no ``embedding``)
    starts with a zero gene embedding and gets it from the saved state."""
    k = config["latent_dim"]
    if config.get("basal_encoder", "mlp") == "mlp":
        return MLPBasalEncoder(
            len(genes),
            k,
            condition_features=condition_features,
            subtract_shift=subtract_shift,
            hidden=hidden,
        )
    encoder = TransformerBasalEncoder(
        genes,
        k,
        config["token_embedding_dim"],
        condition_features=condition_features,
        subtract_shift=subtract_shift,
        hidden=hidden,
        n_tokens=config["n_tokens"],
        **config["transformer"],
    )
    if embedding is not None:
        encoder.body.genes.set_embedding(*embedding)
    return encoder
