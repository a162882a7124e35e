"""The validation gate: an AnnData checked once against a model's registry.

Every verb that takes cells passes them through one function here, once, before any heavy
work: :func:`check_cells` (the cells of ``train``, ``iwelbo``, ``check_ate`` and
``predict``), :func:`check_control_cells` (the basal cells of the ATE) or
:func:`check_model_data` (``load(adata=...)``). The checks themselves live in
:mod:`samsvae_plus.data.validate`, one function each; this module only decides which of
them an input needs, in which order, and keeps what they computed (the counts matrix,
library sizes, condition labels, context ids, dosage) in a :class:`CheckedCells` that
:func:`~samsvae_plus.data.encode.encode` consumes without checking again. Requested
conditions get the same treatment in :func:`check_requested_conditions`. Cells of the
labels the registry excludes never reach a check: :func:`without_excluded` drops them first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from samsvae_plus.data import validate
from samsvae_plus.data.encode import context_ids, dosage_matrix
from samsvae_plus.data.registry import Registry, counts_matrix, library_sizes
from samsvae_plus.errors import InputError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class CheckedCells:
    """Cells of one AnnData that passed every check against ``registry``.

    ``counts`` is the AnnData's own matrix, not a copy (a check must not double memory), so
    cells changed in place after the check must be checked again. Where the registry
    excludes labels that some cells carry, it holds the other cells' rows, copied.

    Attributes
    ----------
    registry
        The registry the cells were checked against.
    actions
        The dosage columns, ``"genes"`` or ``"conditions"``
        (see :func:`~samsvae_plus.data.encode.action_names`).
    counts
        The raw-count matrix as the AnnData stores it (dense, scipy sparse, or the on-disk
        matrix of a backed AnnData).
    library_size
        ``float64`` library size per cell.
    conditions
        The condition label of each cell.
    context
        ``int64`` context id per cell (index into ``registry.contexts``).
    dosage
        ``float32`` CSR dosage rows, cells x actions.
    obs_names
        The cells' names.
    """

    registry: Registry
    actions: str
    counts: Any
    library_size: np.ndarray
    conditions: np.ndarray
    context: np.ndarray
    dosage: sp.csr_matrix
    obs_names: pd.Index

    @property
    def n_cells(self) -> int:
        return self.counts.shape[0]


@dataclass(frozen=True)
class CheckedConditions:
    """Condition labels a user asked for, known to a registry, with their dosage rows."""

    labels: tuple[str, ...]
    dosage: sp.csr_matrix


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
    unknown = labels.difference(pd.Index(registry.conditions)).difference(
        pd.Index(registry.exclude or ())
    )
    if len(unknown):
        raise InputError(
            f"adata.obs[{registry.perturbation_key!r}] has {len(unknown)} condition(s) the "
            f"model was not set up with (e.g. {unknown[0]!r}); pass the data the model was "
            "trained on, or only cells of its conditions"
        )


def check_model_data(adata: ad.AnnData, registry: Registry) -> None:
    """The gate of ``load(adata=...)``: an AnnData with the registry's genes, in order, and
    only conditions the registry knows. Its counts are checked when a verb uses them."""
    validate.check_is_anndata(adata)
    check_genes(adata, registry)
    check_conditions(adata, registry)


def without_excluded(adata: ad.AnnData, registry: Registry) -> ad.AnnData:
    """``adata`` without the cells of the labels ``registry.exclude`` names (a view), or
    ``adata`` itself when it has none of them. The model's split numbers these cells.

    Raises
    ------
    InputError
        For a backed AnnData that holds such cells (the backed loader reads the file as it
        is), or when every cell carries an excluded label.
    """
    key = registry.perturbation_key
    if not registry.exclude or key not in adata.obs:
        return adata
    keep = ~adata.obs[key].astype(str).isin(registry.exclude).to_numpy()
    if keep.all():
        return adata
    shown = ", ".join(map(repr, registry.exclude))
    if not keep.any():
        raise InputError(
            f"every cell of adata has a label the model excludes ({shown}); pass other cells"
        )
    if adata.isbacked:
        raise InputError(
            f"adata is backed and holds {int((~keep).sum())} cells labelled {shown}, which the "
            f"model excludes; write a file without them, adata[~adata.obs[{key!r}].isin("
            f"{list(registry.exclude)!r})].write_h5ad(path), and open that"
        )
    logger.debug("leaving out %d cells labelled %s (excluded)", int((~keep).sum()), shown)
    return adata[keep]


def raw_counts_fix(registry: Registry) -> str:
    """What to do when cells given to a model hold normalised values where the registry
    reads raw counts: the verbs take no ``layer=``, so the fix is other cells."""
    where = registry.counts_location()
    example = (
        " (such as a copy with adata.X = adata.layers['counts'])" if registry.layer is None else ""
    )
    return (
        f"the model reads raw counts from {where}, as registered, so pass cells with raw "
        f"counts there{example}"
    )


def check_cells(
    adata: ad.AnnData,
    registry: Registry,
    *,
    actions: str = "genes",
    unlabelled_as_control: bool = False,
    where: str = "adata",
) -> CheckedCells:
    """Check ``adata`` against ``registry`` once, keeping what the checks computed.

    The same genes in the same order, unique names, valid counts, labels without defects,
    contexts seen in training, a positive library size in every cell, and conditions made
    of actions the registry knows.

    Parameters
    ----------
    adata
        Cells with the registry's genes and raw counts where the registry says they are;
        cells of the labels the registry excludes are dropped (:func:`without_excluded`).
    registry
        The registry of the model (or of ``setup_anndata`` on the training data).
    actions
        Dosage columns: ``"genes"`` or ``"conditions"``
        (see :func:`~samsvae_plus.data.encode.action_names`).
    unlabelled_as_control
        Read every cell as a control when ``adata`` has no column of condition labels
        (``predict``'s source cells); otherwise the column is required.
    where
        How messages name ``adata`` when it is not an AnnData or is empty.

    Raises
    ------
    InputError
        For the first problem found; the message names it and the fix.
    """
    validate.check_anndata(adata, where)
    adata = without_excluded(adata, registry)
    validate.check_unique_names(adata.var_names, "gene")
    validate.check_unique_names(adata.obs_names, "cell")
    check_genes(adata, registry)
    counts = counts_matrix(adata, registry.layer)
    validate.check_counts(counts, registry.counts_location(), fix=raw_counts_fix(registry))
    if unlabelled_as_control and registry.perturbation_key not in adata.obs:
        conditions = [registry.control_label] * adata.n_obs
    else:
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
        labels = np.asarray(labels, dtype=str)
        validate.check_known_contexts(np.unique(labels), registry.contexts)
        context = context_ids(labels, registry)
    library = library_sizes(adata, counts, registry.library_size_key, registry.counts_location())
    return CheckedCells(
        registry=registry,
        actions=actions,
        counts=counts,
        library_size=library,
        conditions=conditions,
        context=context,
        dosage=dosage_matrix(conditions, registry, actions),  # raises for unknown genes
        obs_names=adata.obs_names,
    )


def control_rows(conditions: np.ndarray, registry: Registry) -> np.ndarray:
    """Rows labelled with the control label; an error when there are none, because basal
    states are encoded from control cells."""
    rows = np.flatnonzero(np.asarray(conditions, dtype=str) == registry.control_label)
    if len(rows) == 0:
        raise InputError(
            f"no cells labelled {registry.control_label!r} in obs[{registry.perturbation_key!r}] "
            "to encode basal states from; pass cells with that label"
        )
    return rows


def check_control_cells(
    adata: ad.AnnData, registry: Registry, *, actions: str = "genes", where: str = "adata_controls"
) -> CheckedCells:
    """The control cells of ``adata`` (all of them when it has no condition labels),
    checked as :func:`check_cells` does; only those cells need to be valid."""
    validate.check_is_anndata(adata, where)
    if registry.perturbation_key not in adata.obs:
        return check_cells(adata, registry, actions=actions, unlabelled_as_control=True)
    rows = control_rows(adata.obs[registry.perturbation_key], registry)
    return check_cells(adata[rows], registry, actions=actions)


def match_training_labels(labels: Sequence[str], registry: Registry) -> list[str]:
    """Condition labels written as the training data writes them, each once.

    A label the registry knows is kept. Another one names its genes in another order or
    with a control token (``"MAP2K6+KLF1"``, ``"control+KLF1"``): it becomes the training
    label with the same genes (``"KLF1+MAP2K6"``, ``"KLF1"``), or, for a condition never
    seen in training, its genes sorted and joined by the registry's delimiter, so that
    predictions carry the labels a real file of the same screen has. Labels that come out
    the same are kept once, at the first place.

    Raises
    ------
    InputError
        For a label with an empty gene name or a gene named twice.
    """
    known = set(registry.conditions)
    by_genes = {}
    for condition in registry.conditions:
        by_genes.setdefault(frozenset(registry.split_condition(condition)), condition)
    matched: dict[str, None] = {}  # ordered, and each label once
    for label in labels:
        if label not in known:
            genes = registry.split_condition(label)
            label = by_genes.get(
                frozenset(genes), registry.combination_delimiter.join(sorted(genes))
            )
        matched.setdefault(label)
    return list(matched)


def check_requested_conditions(
    perturbations: Sequence[str] | str | None,
    registry: Registry,
    actions: str = "genes",
    *,
    with_control: bool = False,
    match_training: bool = False,
    add_control: bool = False,
) -> CheckedConditions:
    """Condition labels a user asked for, with their dosage rows.

    By default (``perturbations=None``) every registered condition but the control, led by
    the control when ``with_control`` is set: scorers compare every perturbation with the
    prediction's own control cells.

    Parameters
    ----------
    match_training
        Write requested labels as the training data does
        (:func:`match_training_labels`), each once.
    add_control
        Add the control label after the requested ones when they lack it.

    Raises
    ------
    InputError
        For labels that are not strings, not NFC or printable, or that name an action the
        registry does not know (named as the user wrote them).
    """
    if perturbations is None:
        labels = [c for c in registry.conditions if c != registry.control_label]
        if with_control:
            labels = [registry.control_label, *labels]
        return CheckedConditions(tuple(labels), dosage_matrix(labels, registry, actions))
    labels = validate.check_request_labels(perturbations, "perturbations")
    if match_training:
        # unknown genes are reported in the label the user wrote, before it is rewritten
        dosage_matrix(labels, registry, "genes")
        labels = match_training_labels(labels, registry)
    if add_control and registry.control_label not in labels:
        labels = [*labels, registry.control_label]
    return CheckedConditions(tuple(labels), dosage_matrix(labels, registry, actions))
