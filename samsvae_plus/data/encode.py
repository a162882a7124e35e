"""Registry + AnnData -> the arrays the models consume.

:func:`encode` checks an AnnData against a :class:`~samsvae_plus.data.registry.Registry`
(same genes in the same order, known perturbation genes, known contexts, valid counts)
and returns :class:`EncodedData`: CSR counts, a sparse dosage matrix over the single-gene
vocabulary, context ids and library sizes. The loaders turn row blocks of it into tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from samsvae_plus.data import validate
from samsvae_plus.data.registry import Registry, counts_matrix, library_sizes
from samsvae_plus.errors import InputError


@dataclass
class EncodedData:
    """Cells of one AnnData, encoded against a registry.

    Attributes
    ----------
    counts
        ``float32`` CSR matrix, cells x genes; or, encoded with ``load_counts=False`` from a
        backed AnnData, the on-disk matrix, which
        :class:`~samsvae_plus.data.backed_loader.BackedLoader` reads in chunks.
    dosage
        ``float32`` CSR matrix, cells x actions: single-gene perturbations by default (a
        combination has several ones; a control row is empty).
    context
        ``int64`` context id per cell (index into ``Registry.contexts``).
    library_size
        ``float32`` library size per cell.
    conditions
        The condition label of each cell, as given.
    """

    counts: sp.csr_matrix | ad.abc.CSRDataset
    dosage: sp.csr_matrix
    context: np.ndarray
    library_size: np.ndarray
    conditions: np.ndarray

    @property
    def n_cells(self) -> int:
        return self.counts.shape[0]

    def subset(self, index: np.ndarray) -> EncodedData:
        """The cells at ``index``, in that order."""
        index = np.asarray(index)
        return EncodedData(
            counts=self.counts[index],
            dosage=self.dosage[index],
            context=self.context[index],
            library_size=self.library_size[index],
            conditions=self.conditions[index],
        )


def check_genes(adata: ad.AnnData, registry: Registry) -> None:
    """Require the registry's genes, in the registry's order."""
    genes = pd.Index(registry.genes)
    if adata.n_vars == len(genes) and (adata.var_names == genes).all():
        return
    missing = genes.difference(adata.var_names)
    if len(missing):
        raise InputError(
            f"{len(missing)} of the model's {len(genes)} genes are missing from adata "
            f"(e.g. {missing[0]!r}); the data must measure the genes the model was trained on"
        )
    raise InputError(
        "adata has the model's genes in another order or with extra genes; "
        "reorder with adata = adata[:, model.registry.genes]"
    )


def check_conditions(adata: ad.AnnData, registry: Registry) -> None:
    """Require that every condition label in ``adata`` (if it has the registry's
    perturbation column) is one the registry knows; name the first one it does not."""
    if registry.perturbation_key not in adata.obs:
        return
    labels = pd.Index(adata.obs[registry.perturbation_key].astype(str).unique())
    unknown = labels.difference(pd.Index(registry.conditions))
    if len(unknown):
        raise InputError(
            f"adata.obs[{registry.perturbation_key!r}] has {len(unknown)} condition(s) the "
            f"model was not set up with (e.g. {unknown[0]!r}); pass the data the model was "
            "trained on, or only cells of its conditions"
        )


ACTION_UNITS = ("genes", "conditions")


def action_names(registry: Registry, actions: str = "genes") -> tuple[str, ...]:
    """Columns of the dosage matrix: single genes, or whole non-control conditions.

    Most models act per gene, so that ``A+B`` is the sum of ``A`` and ``B``. Models that allow
    one perturbation per cell (SVAE+) treat each condition, combinations included, as its
    own action.
    """
    if actions == "genes":
        return registry.perturbations
    if actions == "conditions":
        return tuple(c for c in registry.conditions if c != registry.control_label)
    raise ValueError(f"actions must be one of {ACTION_UNITS}, got {actions!r}")


def dosage_matrix(
    conditions: Sequence[str], registry: Registry, actions: str = "genes"
) -> sp.csr_matrix:
    """Sparse cells x actions dosage rows for condition labels (control rows are empty).

    Raises
    ------
    InputError
        If a label names a gene (or, per condition, a condition) the model does not know.
    """
    names = action_names(registry, actions)
    column = {name: j for j, name in enumerate(names)}
    unique, inverse = np.unique(np.asarray(conditions, dtype=str), return_inverse=True)
    rows, cols = [], []
    for u, label in enumerate(unique):
        label = str(label)  # a numpy string would show as np.str_('A') in messages
        if actions == "conditions":
            parts = () if label == registry.control_label else (label,)
        else:
            parts = registry.split_condition(label)
        for part in parts:
            if part not in column:
                what = "gene" if actions == "genes" else "condition"
                raise InputError(
                    f"condition {label!r} names {what} {part!r}, which the model never saw perturbed; "
                    f"predict only conditions built from the model's known {what}s "
                    f"(model.actions)"
                )
            rows.append(u)
            cols.append(column[part])
    per_label = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)),
        shape=(len(unique), len(names)),
    )
    return per_label[inverse.ravel()]


def context_ids(labels: Sequence[str], registry: Registry) -> np.ndarray:
    """Context ids of labels, with a clear error for contexts the model does not know."""
    lookup = {c: i for i, c in enumerate(registry.contexts)}
    labels = np.asarray(labels, dtype=str)
    validate.check_known_contexts(np.unique(labels), registry.contexts)
    return np.fromiter((lookup[c] for c in labels), dtype=np.int64, count=len(labels))


def _counts_in_memory(counts) -> sp.csr_matrix:
    if validate.is_backed_sparse(counts):
        counts = counts[:]  # the whole on-disk matrix, as scipy sparse
    return sp.csr_matrix(counts, dtype=np.float32)


def encode(
    adata: ad.AnnData,
    registry: Registry,
    *,
    conditions: Sequence[str] | None = None,
    actions: str = "genes",
    load_counts: bool = True,
) -> EncodedData:
    """Validate ``adata`` against ``registry`` and encode it.

    On a backed AnnData the counts are validated and summed in row blocks, so memory stays
    bounded; with ``load_counts=False`` they are then left on disk.

    Parameters
    ----------
    adata
        Cells with the registry's genes (same order) and raw counts where the registry
        says they are.
    registry
        The registry of the model (or of ``setup_anndata`` on the training data).
    conditions
        Condition labels to use instead of ``obs[registry.perturbation_key]``; this is how
        counterfactual predictions assign perturbations to control cells.
    actions
        Dosage columns: ``"genes"`` or ``"conditions"`` (see :func:`action_names`).
    load_counts
        Read the counts into memory as ``float32`` CSR; ``False`` keeps the matrix of a
        backed AnnData as it is (everything else is encoded either way).
    """
    validate.check_anndata(adata)
    validate.check_unique_names(adata.var_names, "gene")
    validate.check_unique_names(adata.obs_names, "cell")
    check_genes(adata, registry)
    counts = counts_matrix(adata, registry.layer)
    validate.check_counts(counts, registry.counts_location())
    if conditions is None:
        conditions = validate.check_obs_column(
            adata.obs, registry.perturbation_key, "perturbation", allow_unused=True
        )
    conditions = np.asarray(conditions, dtype=str)
    if registry.context_key is None:
        context = np.zeros(adata.n_obs, dtype=np.int64)
    else:
        labels = validate.check_obs_column(
            adata.obs, registry.context_key, "context", allow_unused=True
        )
        context = context_ids(labels, registry)
    library = library_sizes(adata, counts, registry.library_size_key, registry.counts_location())
    return EncodedData(
        counts=_counts_in_memory(counts) if load_counts else counts,
        dosage=dosage_matrix(conditions, registry, actions),
        context=context,
        library_size=library.astype(np.float32),
        conditions=conditions,
    )
