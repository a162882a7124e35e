"""The GO gene embedding: a truncated SVD of the TF-IDF-weighted, propagated GO annotation
matrix.

The recipe is the one of the embedding in the shared data directory
(``annotations/go/human_gene_go_svd128.npz``; the shared folder's README describes it);
run on that file's Bioconductor annotations, :func:`embedding_from_annotations` gives back
its genes and singular values:

1. **Propagation.** A gene annotated to a term is annotated to all of the term's ancestors
   along go-basic's relations (:data:`~samsvae_plus.data.go_files.PROPAGATED_RELATIONS`).
   The matrix is binary: genes x terms.
2. **Term filter.** Terms with fewer than ``min_genes`` genes say little about similarity,
   and terms with more than ``max_genes`` (the roots, "protein binding") say little about
   anything; both are dropped, then genes left without a term.
3. **TF-IDF.** Each term is weighted by ``log(n_genes / n_genes_with_term)``, so rare terms
   count more, and each gene's row is scaled to unit length.
4. **SVD.** The embedding is ``U * S`` of the rank-``n_components`` truncated SVD
   (:func:`scipy.sparse.linalg.svds`), with each column's sign fixed so that its entry of
   largest magnitude is positive.

From a GAF there is one difference: a GAF has no gene-type column, so every gene of the
file is used. ``goa_human.gaf`` annotates UniProtKB proteins only, which is close to the
shared file's protein-coding genes. Genes are rows in symbol order (the shared file orders
them by Entrez id, which a GAF does not give).
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from samsvae_plus._atomic import atomic_write_bytes
from samsvae_plus.data.go_files import read_gaf, read_obo
from samsvae_plus.data.go_recipe import MAX_GENES, MIN_GENES, N_COMPONENTS
from samsvae_plus.errors import InputError

__all__ = [
    "GoEmbedding",
    "annotation_matrix",
    "tfidf",
    "embedding_from_annotations",
    "build_go_embedding",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GoEmbedding:
    """A gene embedding with the singular values it came from.

    Attributes
    ----------
    embedding
        Genes x components, ``U * S``.
    genes
        Gene symbols, one per row.
    singular_values
        In decreasing order.
    """

    embedding: np.ndarray
    genes: np.ndarray
    singular_values: np.ndarray

    def to_frame(self) -> pd.DataFrame:
        """The embedding as a DataFrame indexed by gene symbol."""
        return pd.DataFrame(self.embedding, index=pd.Index(self.genes, name="gene"))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the ``.npz`` layout that :func:`samsvae_plus.datasets.go_gene_embedding`
        reads (``embedding`` as float16, ``genes``, ``singular_values``), atomically."""
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            embedding=self.embedding.astype(np.float16),
            genes=np.asarray(self.genes, dtype=str),
            singular_values=self.singular_values.astype(np.float32),
        )
        atomic_write_bytes(path, buffer.getvalue())
        return Path(path)


def _ancestor_map(parents: Mapping[str, Iterable[str]], terms: Iterable[str]) -> dict:
    """Each of ``terms`` -> the term and all its ancestors, as a list."""
    result = {}
    for term in terms:
        seen, stack = {term}, [term]
        while stack:  # iterative: GO is deep enough to make recursion fragile
            for parent in parents.get(stack.pop(), ()):
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
        result[term] = sorted(seen)
    return result


def annotation_matrix(
    annotations: pd.DataFrame,
    parents: Mapping[str, Iterable[str]],
    *,
    min_genes: int = MIN_GENES,
    max_genes: int = MAX_GENES,
) -> tuple[sp.csr_matrix, pd.Index, pd.Index]:
    """The propagated, filtered binary annotation matrix.

    Parameters
    ----------
    annotations
        Direct annotations, columns ``gene`` and ``go_id``.
    parents
        Term -> its parents; the terms of the ontology are its keys, and annotations to
        other terms (obsolete or unknown) are dropped.
    min_genes, max_genes
        Terms with fewer or more genes, after propagation, are dropped; then genes without
        any term left.

    Returns
    -------
    matrix, genes, terms
        Genes x terms CSR matrix of ones, with genes and terms in sorted order.
    """
    known = annotations["go_id"].isin(pd.Index(list(parents)))
    if (~known).any():
        logger.info(
            "%d annotations name terms missing from the ontology (obsolete or from another "
            "release) and are dropped",
            int((~known).sum()),
        )
    direct = annotations.loc[known, ["gene", "go_id"]].drop_duplicates()
    ancestors = _ancestor_map(parents, direct["go_id"].unique())
    pairs = (
        direct.assign(term=direct["go_id"].map(ancestors))
        .explode("term")[["gene", "term"]]
        .drop_duplicates()
    )
    sizes = pairs["term"].value_counts()
    kept = sizes.index[(sizes >= min_genes) & (sizes <= max_genes)]
    pairs = pairs[pairs["term"].isin(kept)]
    genes = pd.Index(sorted(pairs["gene"].unique()), name="gene")
    terms = pd.Index(sorted(pairs["term"].unique()), name="go_id")
    if len(genes) == 0:
        raise InputError(
            f"no GO term has between min_genes={min_genes} and max_genes={max_genes} genes; "
            "widen the range or pass a fuller annotation file"
        )
    matrix = sp.csr_matrix(
        (
            np.ones(len(pairs)),
            (genes.get_indexer(pairs["gene"]), terms.get_indexer(pairs["term"])),
        ),
        shape=(len(genes), len(terms)),
    )
    return matrix, genes, terms


def tfidf(matrix: sp.spmatrix) -> sp.csr_matrix:
    """Weight each column by ``log(n_rows / n_rows_with_it)``, then scale rows to unit
    length (rows that end up all zero stay zero)."""
    matrix = sp.csr_matrix(matrix, dtype=np.float64)
    document_frequency = np.asarray((matrix > 0).sum(axis=0)).ravel()
    idf = np.log(matrix.shape[0] / np.maximum(document_frequency, 1))
    weighted = sp.csr_matrix(matrix @ sp.diags(idf))
    norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
    return sp.csr_matrix(sp.diags(1 / np.where(norms > 0, norms, 1)) @ weighted)


def embedding_from_annotations(
    annotations: pd.DataFrame,
    parents: Mapping[str, Iterable[str]],
    *,
    n_components: int = N_COMPONENTS,
    min_genes: int = MIN_GENES,
    max_genes: int = MAX_GENES,
) -> GoEmbedding:
    """The GO embedding of direct annotations (columns ``gene``, ``go_id``) under the term
    graph ``parents``; see the module's description for the recipe."""
    matrix, genes, terms = annotation_matrix(
        annotations, parents, min_genes=min_genes, max_genes=max_genes
    )
    if not 0 < n_components < min(matrix.shape):
        raise InputError(
            f"n_components={n_components} must be positive and below the smaller side of "
            f"the {matrix.shape[0]} genes x {matrix.shape[1]} terms matrix"
        )
    # here, not at the top: sp.datasets imports this module, and loading a data set should
    # not pay for ARPACK
    from scipy.sparse.linalg import svds

    logger.info("GO embedding of %d genes from %d terms", len(genes), len(terms))
    u, s, _ = svds(tfidf(matrix), k=n_components, random_state=0)
    order = np.argsort(s)[::-1]
    u, s = u[:, order], s[order]
    signs = np.sign(u[np.abs(u).argmax(axis=0), np.arange(u.shape[1])])
    return GoEmbedding(u * signs * s, genes.to_numpy(dtype=str), s)


def build_go_embedding(
    obo: str | os.PathLike,
    gaf: str | os.PathLike,
    *,
    n_components: int = N_COMPONENTS,
    min_genes: int = MIN_GENES,
    max_genes: int = MAX_GENES,
) -> GoEmbedding:
    """Build the GO gene embedding from an ontology and an annotation file.

    Parameters
    ----------
    obo
        The ontology, such as ``go-basic.obo`` (``sp.datasets.download("go_basic")``).
    gaf
        Gene annotations in GAF 2.x, such as ``goa_human.gaf.gz``
        (``sp.datasets.download("goa_human")``). Secondary GO ids are mapped to primary
        ones, and ``NOT`` annotations are left out.
    n_components
        Width of the embedding.
    min_genes, max_genes
        Range of gene counts of the terms kept.

    Returns
    -------
    GoEmbedding
        Call ``.save(path)`` to write the ``.npz`` that ``gene_embedding="go"`` reads.
    """
    parents, alternatives = read_obo(obo)
    annotations = read_gaf(gaf)
    annotations["go_id"] = annotations["go_id"].map(lambda term: alternatives.get(term, term))
    return embedding_from_annotations(
        annotations, parents, n_components=n_components, min_genes=min_genes, max_genes=max_genes
    )
