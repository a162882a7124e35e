"""Checked cells -> the arrays the models consume.

:func:`encode` turns :class:`~samsvae_plus.data.checked.CheckedCells` (an AnnData that
passed the gate of :mod:`samsvae_plus.data.checked` once) into :class:`EncodedData`: CSR
counts, a sparse dosage matrix over the single-gene vocabulary, context ids and library
sizes. It checks nothing itself. The loaders turn row blocks of it into tensors.
:func:`dosage_matrix` and :func:`context_ids` turn labels into codes, for the gate and for
requested conditions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anndata as ad
import numpy as np
import scipy.sparse as sp

from samsvae_plus.data import validate
from samsvae_plus.data.registry import Registry
from samsvae_plus.errors import InputError

if TYPE_CHECKING:  # the gate builds its codes with this module's functions
    from samsvae_plus.data.checked import CheckedCells


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
    """Context ids of labels the caller has checked with
    :func:`~samsvae_plus.data.validate.check_known_contexts`."""
    lookup = {c: i for i, c in enumerate(registry.contexts)}
    labels = np.asarray(labels, dtype=str)
    return np.fromiter((lookup[c] for c in labels), dtype=np.int64, count=len(labels))


def _counts_in_memory(counts) -> sp.csr_matrix:
    if validate.is_backed_sparse(counts):
        counts = counts[:]  # the whole on-disk matrix, as scipy sparse
    return sp.csr_matrix(counts, dtype=np.float32)


def encode(cells: CheckedCells, *, load_counts: bool = True) -> EncodedData:
    """The model arrays of cells that passed :func:`~samsvae_plus.data.checked.check_cells`.

    Parameters
    ----------
    cells
        The checked cells; nothing is checked again.
    load_counts
        Read the counts into memory as ``float32`` CSR; ``False`` keeps the matrix of a
        backed AnnData on disk (everything else is in memory either way).

    Returns
    -------
    EncodedData
        Counts, dosage, context ids, library sizes and condition labels of every cell.
    """
    return EncodedData(
        counts=_counts_in_memory(cells.counts) if load_counts else cells.counts,
        dosage=cells.dosage,
        context=cells.context,
        library_size=cells.library_size.astype(np.float32),
        conditions=cells.conditions,
    )
