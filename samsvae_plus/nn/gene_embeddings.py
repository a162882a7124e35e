"""Gene embeddings looked up by gene symbol, from one of several sources.

Sources (``SOURCES``):

- ``"go"``: the GO-derived 128-d embedding of the data directory, or the one that
  ``samsvae-plus go-embedding`` builds from GO's public files into the download cache;
- ``"esm2"``: ESM2 protein-language-model vectors computed with fair-esm from a FASTA and
  a local checkpoint the caller gives (:mod:`samsvae_plus.nn.esm2_embedding`);
- ``"learned"``: no fixed vector; every gene gets a learned one (an embedding table);
- ``"random"``: fixed random vectors, a control for how much an embedding's content
  matters. Each gene's vector is drawn from a seed derived from its symbol, so it does not
  depend on the gene's position or on which other genes are asked for;
- or any table the caller provides (a DataFrame indexed by gene symbol, such as the
  simulator's ``uns['simulation']['perturbation_embedding']``).

Symbols missing from the ``"go"`` and ``"esm2"`` tables are resolved through the alias
column of the data directory's ``annotations/go/human_genes.tsv.gz`` (``MARCH8`` ->
``MARCHF8``); without that file (a pip install has none) a warning says so and symbols
match exactly. Genes still without an embedding are reported with a warning giving their
count, and the networks give them a learned fallback (:class:`GeneEmbeddingTable`).
"""

from __future__ import annotations

import os
import warnings
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from samsvae_plus.errors import InputError, MissingDataFileError, check_choice

SOURCES = ("go", "esm2", "learned", "random")


def alias_map(human_genes: pd.DataFrame) -> dict[str, str]:
    """Alias -> official symbol, for aliases that name exactly one gene."""
    pairs = (
        human_genes[["symbol", "alias"]]
        .dropna()
        .assign(alias=lambda t: t["alias"].str.split(";"))
        .explode("alias")
    )
    pairs = pairs[pairs["alias"] != pairs["symbol"]]
    unique = pairs.drop_duplicates("alias", keep=False)
    return dict(zip(unique["alias"], unique["symbol"], strict=True))


def lookup(
    genes: Sequence[str], table: pd.DataFrame, aliases: dict[str, str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``table`` for ``genes``: ``(matrix, found)``; missing rows are zeros.

    Parameters
    ----------
    genes
        Gene symbols, in the order wanted.
    table
        Embedding, genes x dimensions, indexed by symbol.
    aliases
        Optional alias -> symbol map tried for symbols not in the table.
    """
    index = {str(g): i for i, g in enumerate(table.index)}
    values = table.to_numpy(dtype=np.float32)
    matrix = np.zeros((len(genes), values.shape[1]), dtype=np.float32)
    found = np.zeros(len(genes), dtype=bool)
    for row, gene in enumerate(genes):
        key = gene if gene in index else (aliases or {}).get(gene)
        if key in index:
            matrix[row] = values[index[key]]
            found[row] = True
    return matrix, found


def _scaled_lookup(
    genes: Sequence[str], table: pd.DataFrame, aliases: dict[str, str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`lookup`, divided by the standard deviation of the whole table: every source
    enters at one scale, and a gene's row does not depend on which other genes are asked
    for (so weights learned on one gene set transfer to another)."""
    matrix, found = lookup(genes, table, aliases)
    return matrix / max(float(table.to_numpy(dtype=np.float32).std()), 1e-6), found


def random_embedding(genes: Sequence[str], dim: int = 128, seed: int = 0) -> np.ndarray:
    """Fixed standard-normal vectors, one per gene, each seeded by ``seed`` and the symbol."""
    return (
        np.stack(
            [
                np.random.default_rng([seed, zlib.crc32(str(g).encode())]).standard_normal(dim)
                for g in genes
            ]
        )
        .astype(np.float32)
        .reshape(len(genes), dim)
    )


def _aliases(data_dir) -> dict[str, str]:
    """The alias map of the data directory's gene table; without the table, a warning that
    names it and an empty map, so that the embedding still works by exact symbol."""
    from samsvae_plus.data import datasets

    try:
        return alias_map(datasets.human_genes(data_dir))
    except MissingDataFileError as err:
        warnings.warn(
            f"gene aliases are not resolved, so renamed genes (MARCH8 -> MARCHF8) match only "
            f"by their current symbol: {err}",
            stacklevel=3,
        )
        return {}


def gene_embedding(
    genes: Sequence[str],
    source: str | pd.DataFrame = "go",
    *,
    data_dir: str | os.PathLike | None = None,
    dim: int = 128,
    seed: int = 0,
    fasta: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    cache: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Embedding rows for ``genes``: ``(matrix, found)``, genes x width and a boolean mask.

    Rows of genes without an embedding are zeros (``found`` False), and a warning gives
    their count; with ``"learned"`` the matrix has width 0 and no gene is found. Tables are
    divided by their overall standard deviation, so every source has unit scale.

    Parameters
    ----------
    genes
        Gene symbols, in the order wanted.
    source
        One of ``SOURCES``, or a DataFrame indexed by symbol.
    data_dir
        Data directory of the GO embedding and the alias table (see
        :func:`samsvae_plus.datasets.data_dir`).
    dim, seed
        Width and seed of ``"random"``.
    fasta, checkpoint, cache
        For ``"esm2"``: protein FASTA, local ESM2 checkpoint and optional cache file (see
        :func:`samsvae_plus.nn.esm2_embedding.esm2_table`).
    """
    genes = [str(g) for g in genes]
    if isinstance(source, pd.DataFrame):
        matrix, found = _scaled_lookup(genes, source)
    else:
        check_choice("gene_embedding", source, SOURCES)
        if source == "learned":
            return np.zeros((len(genes), 0), dtype=np.float32), np.zeros(len(genes), dtype=bool)
        if source == "random":
            return random_embedding(genes, dim, seed), np.ones(len(genes), dtype=bool)
        if source == "go":
            from samsvae_plus.data import datasets

            # The embedding first: without it, a missing alias table is beside the point.
            table = datasets.go_gene_embedding(data_dir)
            aliases = _aliases(data_dir)
        else:
            if fasta is None or checkpoint is None:
                raise InputError(
                    "gene_embedding='esm2' needs fasta= (protein sequences) and checkpoint= "
                    "(a local fair-esm ESM2 .pt file); nothing is downloaded"
                )
            from samsvae_plus.nn.esm2_embedding import esm2_table

            aliases = _aliases(data_dir)
            wanted = set(genes) | {aliases[g] for g in genes if g in aliases}
            table = esm2_table(fasta, checkpoint, cache=cache, genes=wanted)
        matrix, found = _scaled_lookup(genes, table, aliases)
    if not found.all():
        missing = [g for g, ok in zip(genes, found, strict=True) if not ok]
        warnings.warn(
            f"{len(missing)} of {len(found)} genes have no embedding (e.g. {missing[:3]}); "
            "they get a learned fallback vector",
            stacklevel=2,
        )
    return matrix, found


class GeneEmbeddingTable(nn.Module):
    """One vector of width ``out_features`` per gene: a learned linear projection of the
    gene's fixed embedding where it has one, and a learned vector of its own where not.

    The fixed embedding and the mask of genes that have one are buffers, so they are saved
    with the model; a model rebuilt for loading starts with zeros and gets them from the
    saved state.

    Parameters
    ----------
    n_genes
        Number of genes (rows).
    embedding_dim
        Width of the fixed embedding (0 for ``"learned"``).
    out_features
        Width of the output vectors.
    """

    def __init__(self, n_genes: int, embedding_dim: int, out_features: int) -> None:
        super().__init__()
        self.register_buffer("fixed", torch.zeros(n_genes, embedding_dim))
        self.register_buffer("found", torch.zeros(n_genes, dtype=torch.bool))
        self.project = nn.Linear(embedding_dim, out_features) if embedding_dim else None
        self.learned = nn.Parameter(0.02 * torch.randn(n_genes, out_features))

    @torch.no_grad()
    def set_embedding(self, matrix: np.ndarray, found: np.ndarray) -> None:
        """Use this fixed embedding (genes x ``embedding_dim``, as :func:`gene_embedding`
        returns it) and mask of the genes that have one."""
        self.fixed.copy_(torch.as_tensor(np.asarray(matrix, dtype=np.float32)))
        self.found.copy_(torch.as_tensor(np.asarray(found, dtype=bool)))

    def forward(self) -> torch.Tensor:
        """The table, genes x ``out_features``."""
        if self.project is None:
            return self.learned
        return torch.where(self.found[:, None], self.project(self.fixed), self.learned)
