"""A basal encoder in the style of STATE's State Embedding (SE) model: a transformer over
gene tokens.

A cell is read as a set of tokens, one per gene among its ``n_tokens`` most expressed.
A token is a learned projection of the gene's embedding
(:class:`~samsvae_plus.nn.gene_embeddings.GeneEmbeddingTable`) plus an encoding of the
gene's expression (:class:`~samsvae_plus.nn.expression_encoding.SoftBinExpression`). A
learned [CLS] token is prepended (and optionally a dataset token, for batch or
technology; never for the cell type, which is what the encoder must generalise over), the
tokens pass through ``torch.nn`` transformer layers, and the [CLS] output summarises the
cell. There are no positional encodings: the encoder is a function of the set of (gene,
expression) pairs, so the order of the genes in the data does not matter.

Because tokens are genes, not cell-type labels, a cell of a type never seen in training
is read with the same vocabulary as every other cell.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from samsvae_plus.data.transforms import ENCODER_TARGET_SUM
from samsvae_plus.nn.encoder_options import ARCHITECTURE, DEFAULT_TOKENS
from samsvae_plus.nn.encoders import GaussianEncoder
from samsvae_plus.nn.expression_encoding import SoftBinExpression
from samsvae_plus.nn.gene_embeddings import GeneEmbeddingTable
from samsvae_plus.nn.mlp import MLP

CHUNK_CELLS = 128


def tie_break_keys(genes: Sequence[str]) -> np.ndarray:
    """A fixed number in ``[0, 0.5)`` per gene symbol, which orders genes of equal counts.

    Counts are integers and many genes of a cell share a count (often 1), so which of them
    fill the last tokens would otherwise depend on the genes' column order. Keyed by the
    symbol, the choice is a property of the genes themselves.
    """
    return np.array([zlib.crc32(str(g).encode()) / 2**33 for g in genes], dtype=np.float64)


class GeneTokenTransformer(nn.Module):
    """The token transformer: counts in, one ``d_model`` vector per cell out ([CLS]).

    Parameters
    ----------
    genes
        Gene symbols, in the data's column order.
    embedding_dim
        Width of the fixed gene embedding (0 for learned gene vectors only).
    n_tokens
        Most-expressed genes read per cell (at most ``encoder_options.MAX_TOKENS``); cells with fewer
        expressed genes are padded, and the padding is masked out of attention.
    d_model, n_heads, n_layers, n_bins, dropout
        Token width, attention heads, transformer layers, expression bins and dropout.
    n_datasets
        Number of dataset (batch, technology) labels with a token of their own; 0 for none.
    """

    def __init__(
        self,
        genes: Sequence[str],
        embedding_dim: int,
        *,
        n_tokens: int = DEFAULT_TOKENS,
        d_model: int = ARCHITECTURE["d_model"],
        n_heads: int = ARCHITECTURE["n_heads"],
        n_layers: int = ARCHITECTURE["n_layers"],
        n_bins: int = ARCHITECTURE["n_bins"],
        dropout: float = ARCHITECTURE["dropout"],
        n_datasets: int = 0,
    ) -> None:
        super().__init__()
        self.n_tokens = n_tokens
        self.d_model = d_model
        self.genes = GeneEmbeddingTable(len(genes), embedding_dim, d_model)
        self.register_buffer("tie_break", torch.as_tensor(tie_break_keys(genes)))
        self.expression = SoftBinExpression(d_model, n_bins)
        # replaces the expression part of tokens hidden in masked-expression pretraining
        self.hidden_expression = nn.Parameter(torch.zeros(d_model))
        self.cls = nn.Parameter(0.02 * torch.randn(d_model))
        self.datasets = nn.Embedding(n_datasets, d_model) if n_datasets else None
        layer = nn.TransformerEncoderLayer(
            d_model,
            n_heads,
            dim_feedforward=2 * d_model,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,  # pre-norm: stable without a learning-rate warm-up
        )
        # Nested tensors would drop padded positions only in eval mode; without them
        # training and inference compute the same function.
        self.layers = nn.TransformerEncoder(
            layer, n_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False
        )

    def select_tokens(
        self, counts: torch.Tensor, library_size: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The cell's tokens: ``(gene index, log expression, padding)``, each cells x k.

        Genes are ranked by count (the same order as by normalised expression within a
        cell), ties broken by :func:`tie_break_keys`; unexpressed genes among the k are
        padding. ``k`` is ``n_tokens``, or fewer when no cell of the batch has that many
        expressed genes: the columns cut would be padding in every cell, and padding does
        not change the output, so this only saves time (sparse data such as Norman's
        K562 cells, 15 expressed genes of 500 at the median, need far fewer than 256).
        """
        expressed = int((counts > 0).sum(-1).max())
        k = max(1, min(self.n_tokens, counts.shape[-1], expressed))
        score = counts.double() + self.tie_break
        _, index = torch.topk(score, k, dim=-1)
        chosen = torch.gather(counts, -1, index)
        value = torch.log1p(chosen * (ENCODER_TARGET_SUM / library_size.unsqueeze(-1)))
        return index, value, chosen <= 0

    def encode_tokens(
        self,
        index: torch.Tensor,
        value: torch.Tensor,
        padding: torch.Tensor,
        *,
        hide: torch.Tensor | None = None,
        dataset: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[CLS] output (cells x ``d_model``) of the given tokens; ``hide`` marks tokens
        whose expression is replaced by a learned placeholder (pretraining)."""
        expression = self.expression(value)
        if hide is not None:
            expression = torch.where(hide.unsqueeze(-1), self.hidden_expression, expression)
        tokens = self.genes()[index] + expression
        prefix = [self.cls.expand(index.shape[0], 1, -1)]
        if self.datasets is not None:
            if dataset is None:
                raise ValueError("this encoder has dataset tokens; pass dataset=")
            prefix.append(self.datasets(dataset).unsqueeze(1))
        tokens = torch.cat([*prefix, tokens], dim=1)
        mask = torch.cat([padding.new_zeros(index.shape[0], len(prefix)), padding], dim=1)
        return self.layers(tokens, src_key_padding_mask=mask)[:, 0]

    def forward(
        self,
        counts: torch.Tensor,
        library_size: torch.Tensor,
        dataset: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[CLS] output for cells x genes ``counts`` with their library sizes.

        Cells are encoded in chunks of ``CHUNK_CELLS`` with similar numbers of expressed
        genes, each chunk with only as many tokens as it needs: in data that mixes sparse
        and rich cells (Norman's K562 cells against the glioma lines) most of the padding,
        and its attention cost, is never computed. Each cell's output is the same as in
        one pass, because cells do not interact and padding is masked.
        """
        order = torch.argsort((counts > 0).sum(-1), stable=True)
        chunks = [
            self.encode_tokens(
                *self.select_tokens(counts[rows], library_size[rows]),
                dataset=None if dataset is None else dataset[rows],
            )
            for rows in order.split(CHUNK_CELLS)
        ]
        return torch.cat(chunks)[torch.argsort(order)]


class TransformerBasalEncoder(GaussianEncoder):
    """:class:`~samsvae_plus.nn.encoders.GaussianEncoder` of the [CLS] output of a
    :class:`GeneTokenTransformer`: the drop-in alternative to ``MLPBasalEncoder``.

    The transformer runs once per cell; a condition input (a sampled shift, a dosage row)
    is concatenated to its output, so particles only repeat the small head ``net``.

    Parameters
    ----------
    genes
        Gene symbols, in the data's column order.
    latent_dim
        Dimension of the latent state.
    embedding_dim
        Width of the fixed gene embedding (0: learned gene vectors only).
    condition_features, subtract_shift
        As for :class:`~samsvae_plus.nn.encoders.MLPBasalEncoder`.
    hidden
        Hidden widths of the head from [CLS] (and condition) to the Normal parameters.
    n_tokens, architecture
        Tokens per cell and the keyword arguments of :class:`GeneTokenTransformer`.
    """

    def __init__(
        self,
        genes: Sequence[str],
        latent_dim: int,
        embedding_dim: int,
        *,
        condition_features: int = 0,
        subtract_shift: bool = False,
        hidden: Sequence[int],
        n_tokens: int = DEFAULT_TOKENS,
        **architecture,
    ) -> None:
        super().__init__()
        self.body = GeneTokenTransformer(genes, embedding_dim, n_tokens=n_tokens, **architecture)
        self.condition_features = condition_features
        self.subtract_shift = subtract_shift
        self.net = MLP(self.body.d_model + condition_features, 2 * latent_dim, hidden)

    def features(self, counts: torch.Tensor, library_size: torch.Tensor) -> torch.Tensor:
        return self.body(counts, library_size)
