"""Fixed gene embeddings looked up by gene symbol.

Sources: the GO-derived 128-d embedding shipped in the data directory (``"go"``), or any
table the caller provides (a DataFrame indexed by gene symbol, such as the simulator's
``uns['simulation']['perturbation_embedding']``). Symbols missing from the table are
resolved through the alias column of ``human_genes.tsv.gz`` (``MARCH8`` -> ``MARCHF8``);
genes still without an embedding are reported, and the models give them a learned
fallback vector.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd


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


def gene_embedding(
    genes: Sequence[str], source: str | pd.DataFrame = "go", *, data_dir=None
) -> tuple[np.ndarray, np.ndarray]:
    """Embedding rows for ``genes`` from ``source``; warns with the count of genes not found."""
    if isinstance(source, pd.DataFrame):
        matrix, found = lookup(list(genes), source)
    elif source == "go":
        from samsvae_plus.data import datasets

        matrix, found = lookup(
            list(genes),
            datasets.go_gene_embedding(data_dir),
            alias_map(datasets.human_genes(data_dir)),
        )
    else:
        raise ValueError(f"unknown gene-embedding source {source!r}; pass 'go' or a DataFrame")
    if not found.all():
        missing = [g for g, ok in zip(genes, found, strict=True) if not ok]
        warnings.warn(
            f"{len(missing)} of {len(found)} genes have no embedding (e.g. {missing[:3]}); "
            "they share a learned fallback vector",
            stacklevel=2,
        )
    return matrix, found
