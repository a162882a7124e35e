"""Files of pretrained token-transformer weights, and loading them into a model's encoder.

A file holds the state of a :class:`~samsvae_plus.nn.transformer.GeneTokenTransformer`,
its architecture, its gene symbols and the name of its gene-embedding source. It is one
``torch.save`` of tensors, strings and numbers, read with ``weights_only=True``, and
written atomically.

Weights transfer to a model by gene symbol, so the model's data may have other genes or
another gene order than the pretraining data: the shared parts (expression encoding,
transformer layers, [CLS], the projection of the fixed gene embedding) are copied, and so
is the learned vector of every gene the two share. A gene the pretraining never saw keeps
its fresh learned vector; its fixed embedding (GO, ESM2) is looked up as for any model.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from samsvae_plus._atomic import atomic_write_bytes
from samsvae_plus.errors import InputError
from samsvae_plus.nn.transformer import GeneTokenTransformer

FORMAT = "samsvae_plus.nn.encoder_weights/1"
# Rows indexed by gene in the transformer's state: copied gene by gene.
GENE_ROWS = ("genes.learned",)
# Rows derived from the model's own genes and embedding source: never copied.
OWN_ROWS = ("genes.fixed", "genes.found", "tie_break")


def save_encoder_weights(
    path: str | os.PathLike,
    body: GeneTokenTransformer,
    genes: Sequence[str],
    *,
    architecture: dict,
    n_tokens: int,
    gene_embedding: str,
    extra: dict | None = None,
) -> Path:
    """Write ``body``'s weights with what is needed to rebuild and match it."""
    payload = {
        "format": FORMAT,
        "genes": [str(g) for g in genes],
        "architecture": dict(architecture),
        "n_tokens": int(n_tokens),
        "gene_embedding": gene_embedding,
        "embedding_dim": int(body.genes.fixed.shape[1]),
        "state": {k: v.detach().cpu() for k, v in body.state_dict().items()},
        **(extra or {}),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def read_encoder_weights(path: str | os.PathLike) -> dict:
    """The contents of a weights file, with a one-line error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"encoder_weights {path} does not exist; pass a file written by "
            "sp.pretrain_encoder or samsvae-plus pretrain"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a file it cannot read
        raise InputError(
            f"encoder_weights {path} is not a readable weights file ({type(err).__name__}); "
            "pass a file written by sp.pretrain_encoder"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(
            f"encoder_weights {path} is not a {FORMAT} file; pass a file written by "
            "sp.pretrain_encoder"
        )
    return payload


def apply_encoder_weights(body: GeneTokenTransformer, genes: Sequence[str], weights: dict) -> int:
    """Copy pretrained ``weights`` into ``body`` (whose genes are ``genes``) by gene
    symbol; returns the number of shared genes."""
    if int(body.genes.fixed.shape[1]) != weights["embedding_dim"]:
        raise InputError(
            f"the encoder weights were pretrained with a {weights['embedding_dim']}-d gene "
            f"embedding ({weights['gene_embedding']!r}) and this model has a "
            f"{body.genes.fixed.shape[1]}-d one; pass gene_embedding={weights['gene_embedding']!r}"
        )
    position = {g: i for i, g in enumerate(weights["genes"])}
    ours = [i for i, g in enumerate(genes) if g in position]
    if not ours:
        raise InputError(
            "the encoder weights share no gene symbol with this model's genes; pretrain on "
            "data with the same gene names"
        )
    theirs = [position[genes[i]] for i in ours]
    state = body.state_dict()
    for key, value in weights["state"].items():
        if key in OWN_ROWS:
            continue
        if key in GENE_ROWS:
            state[key][ours] = value[theirs].to(state[key].dtype)
        else:
            state[key] = value
    body.load_state_dict(state)
    return len(ours)
