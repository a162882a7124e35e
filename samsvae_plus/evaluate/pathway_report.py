"""Learned masks against one gene-set collection: the three analyses in one report."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from samsvae_plus.evaluate.enrichment import dimension_enrichment
from samsvae_plus.evaluate.gene_sets import assign_pathways, load_gene_sets, membership
from samsvae_plus.evaluate.masks import (
    JaccardComparison,
    PathwayAccuracy,
    knn_pathway_accuracy,
    mask_jaccard,
)


@dataclass(frozen=True)
class MaskPathwayReport:
    """Masks of one model against one gene-set collection.

    Attributes
    ----------
    collection
        Name of the collection.
    labels
        Perturbation -> pathway used for accuracy and Jaccard (NaN when unassigned).
    accuracy
        Leave-one-out kNN pathway accuracy and the majority-class rate.
    jaccard
        Within- and between-pathway Jaccard similarity of the masks.
    enrichment
        Per-dimension hypergeometric tests with BH q-values.
    n_perturbations, n_sets
        Perturbations with masks, and sets holding at least two of them.
    """

    collection: str
    labels: pd.Series
    accuracy: PathwayAccuracy
    jaccard: JaccardComparison
    enrichment: pd.DataFrame
    n_perturbations: int
    n_sets: int

    def summary(self, q_threshold: float = 0.1) -> dict:
        """One JSON-ready row: coverage of the labels, accuracy, Jaccard, enrichment hits."""
        hits = self.enrichment[self.enrichment["q_value"] <= q_threshold]
        return {
            "collection": self.collection,
            "n_perturbations": self.n_perturbations,
            "n_sets": self.n_sets,
            **{f"knn_{k}": v for k, v in self.accuracy.to_dict().items()},
            **{f"jaccard_{k}": v for k, v in self.jaccard.to_dict().items()},
            "n_tests": len(self.enrichment),
            f"n_enriched_q{q_threshold:g}": len(hits),
            f"n_dimensions_enriched_q{q_threshold:g}": int(hits["dimension"].nunique()),
        }


def mask_pathway_report(
    mask_probabilities: pd.DataFrame,
    gene_sets: str | os.PathLike | Mapping[str, Sequence[str]],
    *,
    collection: str | None = None,
    k: int = 3,
    threshold: float = 0.5,
    min_members: int = 2,
    max_set_size: int | None = None,
    n_permutations: int = 1000,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
) -> MaskPathwayReport:
    """Compare learned masks with a gene-set collection.

    Parameters
    ----------
    mask_probabilities
        ``model.mask_probabilities()``: perturbations (single genes) x latent dimensions.
    gene_sets
        A collection name (``"replogle"``, ``"corum"``, ``"gobp"``, ``"pathway"``), a file,
        or a mapping (see :func:`~samsvae_plus.evaluate.gene_sets.load_gene_sets`).
    collection
        Name used in the report; by default ``gene_sets`` when it is a name or path.
    k
        Neighbours of the kNN classifier.
    threshold
        Probability above which a mask entry counts as active (Jaccard, enrichment).
    min_members
        Perturbations a set must hold to be used.
    max_set_size
        Leave out sets with more genes than this (very general GO terms).
    n_permutations
        Label shufflings of the permutation tests.
    """
    name = collection or (str(gene_sets) if not isinstance(gene_sets, Mapping) else "custom")
    sets = load_gene_sets(gene_sets, data_dir)
    options = dict(min_members=min_members, max_set_size=max_set_size)
    labels = assign_pathways(mask_probabilities.index, sets, **options)
    table = membership(mask_probabilities.index, sets, **options)
    return MaskPathwayReport(
        collection=name,
        labels=labels,
        accuracy=knn_pathway_accuracy(
            mask_probabilities, labels, k=k, n_permutations=n_permutations, seed=seed
        ),
        jaccard=mask_jaccard(
            mask_probabilities,
            labels,
            threshold=threshold,
            n_permutations=n_permutations,
            seed=seed,
        ),
        enrichment=dimension_enrichment(mask_probabilities, table, threshold=threshold),
        n_perturbations=len(mask_probabilities),
        n_sets=table.shape[1],
    )
