"""The basal-encoder options every model of the family takes, as one typed record.

:class:`EncoderOptions` holds the six encoder arguments of the user classes with their
defaults and help (field metadata, which the command line reads). The same record, once
resolved by :func:`~samsvae_plus.nn.basal_encoder.resolve_encoder`, is what a model's
configuration keeps: for a transformer the architecture and token count actually used, the
gene-embedding source by name, and the width of that embedding.

Nothing here imports torch or pandas, so the command line can build its parser from it
cheaply.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

BASAL_ENCODERS = ("mlp", "transformer")
MAX_TOKENS = 2048
DEFAULT_TOKENS = 256
# Architecture of the token transformer; every key is saved in the model config.
ARCHITECTURE = dict(d_model=64, n_heads=4, n_layers=2, n_bins=16, dropout=0.0)
# Keys a transformer adds to a saved config, in the order they were always written.
TRANSFORMER_KEYS = (
    "basal_encoder",
    "n_tokens",
    "transformer",
    "encoder_weights",
    "gene_embedding",
    "token_embedding_dim",
)


@dataclass(frozen=True)
class EncoderOptions:
    """How ``q(z_basal)`` reads a cell (see :mod:`samsvae_plus.nn.basal_encoder`).

    Fields marked ``derived`` in their metadata are not arguments: resolving the options
    fills them in.
    """

    basal_encoder: str = field(
        default="mlp",
        metadata={
            "help": "encoder of q(z_basal): standardised expression of every gene, or a "
            "transformer over gene tokens",
            "choices": BASAL_ENCODERS,
        },
    )
    gene_embedding: str | pd.DataFrame = field(
        default="go",
        metadata={
            "help": "gene vectors of the transformer's tokens and of the gene-embedding "
            "prior: 'go', 'esm2', 'learned', 'random' (from Python also a DataFrame indexed "
            "by gene)"
        },
    )
    gene_embedding_options: dict | None = field(
        default=None,
        metadata={"help": "keyword arguments of nn.gene_embeddings.gene_embedding"},
    )
    n_tokens: int | None = field(
        default=None,
        metadata={
            "help": f"transformer: genes read per cell, 1 to {MAX_TOKENS} "
            f"(default: {DEFAULT_TOKENS})"
        },
    )
    transformer: dict | None = field(
        default=None,
        metadata={"help": "transformer: a dict of d_model, n_heads, n_layers, n_bins, dropout"},
    )
    encoder_weights: str | os.PathLike | None = field(
        default=None,
        metadata={"help": "transformer: pretrained weights written by samsvae-plus pretrain"},
    )
    token_embedding_dim: int | None = field(
        default=None,
        metadata={"derived": True, "help": "width of the transformer's fixed gene embedding"},
    )

    def to_dict(self, *, name_mlp: bool) -> dict[str, Any]:
        """The entries of a saved config: a transformer's resolved options, or for an MLP
        ``{"basal_encoder": "mlp"}`` when ``name_mlp`` (SAMS-VAE and CPA-VAE always named
        their encoder) and nothing otherwise."""
        if self.basal_encoder != "transformer":
            return {"basal_encoder": self.basal_encoder} if name_mlp else {}
        values = asdict(self)
        return {key: values[key] for key in TRANSFORMER_KEYS}

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> EncoderOptions:
        """The options held by a saved config (any other keys are left alone)."""
        return cls(**{f.name: config[f.name] for f in fields(cls) if f.name in config})
