"""``sp.pretrain_encoder``: masked-expression pretraining of the transformer basal encoder.

The token transformer (:class:`~samsvae_plus.nn.transformer.GeneTokenTransformer`) is
trained on its own, without labels (:mod:`samsvae_plus.nn.masked_expression`), on any
cells, and its weights are written to a file that a model loads with
``SAMSVAE(adata, basal_encoder="transformer", encoder_weights=PATH)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from samsvae_plus.data import validate
from samsvae_plus.data.registry import counts_location, counts_matrix, library_sizes
from samsvae_plus.errors import InputError
from samsvae_plus.nn.basal_encoder import check_architecture, check_n_tokens
from samsvae_plus.nn.encoder_options import DEFAULT_TOKENS
from samsvae_plus.nn.encoder_weights import save_encoder_weights
from samsvae_plus.nn.gene_embeddings import gene_embedding as lookup_gene_embedding
from samsvae_plus.nn.masked_expression import MaskedExpressionHead, masked_expression_loss
from samsvae_plus.nn.transformer import GeneTokenTransformer
from samsvae_plus.settings import resolve_device, seeded


@dataclass
class PretrainResult:
    """What :func:`pretrain_encoder` returns.

    Attributes
    ----------
    path
        The weights file.
    validation_loss
        Masked-expression loss (mean squared error of hidden log expression) of the
        validation cells, before training (entry 0) and after each epoch, with the same
        hidden tokens every time.
    train_loss
        Mean training loss of each epoch.
    best_epoch
        The epoch whose weights were written (0: none improved on the start).
    body
        The pretrained transformer, on the CPU.
    """

    path: Path
    validation_loss: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    body: GeneTokenTransformer | None = None

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "validation_loss": self.validation_loss,
            "train_loss": self.train_loss,
            "best_epoch": self.best_epoch,
        }


def _batch(counts: sp.csr_matrix, library: np.ndarray, rows: np.ndarray, device):
    return (
        torch.from_numpy(counts[rows].toarray().astype(np.float32)).to(device),
        torch.from_numpy(library[rows].astype(np.float32)).to(device),
    )


def pretrain_encoder(
    adata: ad.AnnData,
    path: str | os.PathLike,
    *,
    layer: str | None = None,
    gene_embedding: str | pd.DataFrame = "go",
    gene_embedding_options: dict | None = None,
    n_tokens: int = DEFAULT_TOKENS,
    transformer: dict | None = None,
    mask_fraction: float = 0.15,
    max_epochs: int = 20,
    batch_size: int = 256,
    lr: float = 1e-3,
    validation_fraction: float = 0.1,
    seed: int = 0,
    device: str = "auto",
) -> PretrainResult:
    """Pretrain the transformer encoder by masked-expression prediction; write its weights.

    Parameters
    ----------
    adata
        Cells x genes of raw counts (``X`` or ``layer``); no registration or labels are
        needed. Gene symbols are ``adata.var_names``.
    path
        The weights file to write (atomically).
    gene_embedding, gene_embedding_options
        Gene vectors of the tokens, as ``gene_embedding`` of the models; a model loading
        the weights must use the same source.
    n_tokens, transformer
        Tokens per cell and architecture, as for the models.
    mask_fraction
        Share of each cell's tokens whose expression is hidden (at least one per cell).
    max_epochs, batch_size, lr
        Adam on the masked-expression loss; the epoch with the best validation loss is
        kept.
    validation_fraction
        Cells held out to choose the epoch (and to report the loss).
    seed
        Seeds the initialisation, the split, the order and the hidden tokens.
    """
    validate.check_anndata(adata)
    max_epochs = validate.check_positive_int(max_epochs, "max_epochs")
    batch_size = validate.check_positive_int(batch_size, "batch_size")
    lr = validate.check_positive_number(lr, "lr")
    seed = validate.check_seed(seed)
    n_tokens = check_n_tokens(n_tokens)
    architecture = check_architecture(transformer or {})
    if not 0 < mask_fraction < 1:
        raise InputError(f"mask_fraction must lie strictly between 0 and 1, got {mask_fraction}")
    if not 0 < validation_fraction < 1:
        raise InputError(
            f"validation_fraction must lie strictly between 0 and 1, got {validation_fraction}"
        )
    validate.check_device(device)
    counts = counts_matrix(adata, layer)
    validate.check_counts(counts, counts_location(layer))
    library = library_sizes(adata, counts, None, counts_location(layer))
    counts = sp.csr_matrix(counts)
    genes = [str(g) for g in adata.var_names]
    matrix, found = lookup_gene_embedding(genes, gene_embedding, **(gene_embedding_options or {}))
    source_name = gene_embedding if isinstance(gene_embedding, str) else "table"

    rng = np.random.default_rng(seed)
    order = rng.permutation(adata.n_obs)
    n_validation = max(1, int(round(validation_fraction * adata.n_obs)))
    validation, train = np.sort(order[:n_validation]), order[n_validation:]
    if train.size == 0:
        raise InputError(
            "no cells left to train on; pass more cells or a smaller validation_fraction"
        )
    device = resolve_device(device)
    with seeded(seed):
        body = GeneTokenTransformer(genes, matrix.shape[1], n_tokens=n_tokens, **architecture)
        head = MaskedExpressionHead(body.d_model)
    body.genes.set_embedding(matrix, found)
    body.to(device)
    head.to(device)
    optimizer = torch.optim.Adam([*body.parameters(), *head.parameters()], lr=lr)
    train_generator = torch.Generator(device=device).manual_seed(seed)

    @torch.no_grad()
    def validation_loss() -> float:
        body.eval()
        head.eval()
        # the same hidden tokens at every epoch, so the losses are comparable
        generator = torch.Generator(device=device).manual_seed(seed + 1)
        total = 0.0
        for start in range(0, validation.size, batch_size):
            rows = validation[start : start + batch_size]
            loss = masked_expression_loss(
                body, head, *_batch(counts, library, rows, device), mask_fraction, generator
            )
            total += float(loss) * rows.size
        body.train()
        head.train()
        return total / validation.size

    result = PretrainResult(path=Path(path), validation_loss=[validation_loss()])
    best_state = {k: v.detach().clone() for k, v in body.state_dict().items()}
    for epoch in range(1, max_epochs + 1):
        shuffled = rng.permutation(train)
        losses = []
        for start in range(0, shuffled.size, batch_size):
            rows = np.sort(shuffled[start : start + batch_size])
            loss = masked_expression_loss(
                body, head, *_batch(counts, library, rows, device), mask_fraction, train_generator
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        result.train_loss.append(float(np.mean(losses)))
        result.validation_loss.append(validation_loss())
        if result.validation_loss[-1] < min(result.validation_loss[:-1]):
            result.best_epoch = epoch
            best_state = {k: v.detach().clone() for k, v in body.state_dict().items()}
    body.load_state_dict(best_state)
    body.cpu().eval()
    save_encoder_weights(
        path,
        body,
        genes,
        architecture=architecture,
        n_tokens=n_tokens,
        gene_embedding=source_name,
        extra={"pretraining": result.to_dict()},
    )
    result.body = body
    return result
