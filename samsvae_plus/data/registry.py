"""Registration: validate an AnnData once and record how to read it.

:func:`setup_anndata` checks the counts, labels and keys up front and stores a
:class:`Registry` in ``adata.uns["samsvae_plus"]``. The model keeps that registry, saves it
next to its weights and replays it when it meets new data, so that genes, perturbations
and contexts always line up with what the model was trained on.

Perturbations are recorded at the level of single genes: a combination ``"A+B"`` is a
dosage row with ones for ``A`` and ``B``. A combination never seen in training is
therefore still predictable when each of its genes was seen.

Cells whose label names no perturbation (``unassigned``, ``multiplet``) can be left out
with ``exclude=``: the registry records those labels, and the validation gate
(:func:`~samsvae_plus.data.checked.check_cells`) drops their cells wherever a model meets
them (:func:`~samsvae_plus.data.checked.without_excluded`).
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import anndata as ad
import numpy as np
import pandas as pd

from samsvae_plus._version import __version__
from samsvae_plus.data import validate
from samsvae_plus.data.label_hints import cell_count, label_hint, non_perturbation_labels
from samsvae_plus.errors import InputError

UNS_KEY = "samsvae_plus"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registry:
    """How to read counts, perturbations and contexts from an AnnData.

    Attributes
    ----------
    perturbation_key
        ``obs`` column with condition labels (``"control"``, ``"A"``, ``"A+B"``).
    control_label
        The label of unperturbed cells.
    combination_delimiter
        Separator of genes in a combination label.
    context_key
        Optional ``obs`` column with the cell type or line; ``None`` means one context.
    layer
        Where the raw counts are: ``None`` for ``X``, else a key of ``layers``.
    library_size_key
        Optional ``obs`` column with each cell's library size; ``None`` means the sum of
        counts over the modelled genes.
    exclude
        Condition labels whose cells are left out of the model; ``None`` when none are.
    genes
        Gene names in model order.
    perturbations
        The single-gene perturbation vocabulary (columns of the dosage matrix), sorted.
    conditions
        Condition labels present at registration, control included.
    contexts
        Context labels in model order.
    version
        The package version that wrote the registry.
    """

    perturbation_key: str
    control_label: str
    combination_delimiter: str = "+"
    context_key: str | None = None
    layer: str | None = None
    library_size_key: str | None = None
    exclude: tuple[str, ...] | None = None
    genes: tuple[str, ...] = field(default=(), repr=False)
    perturbations: tuple[str, ...] = field(default=(), repr=False)
    conditions: tuple[str, ...] = field(default=(), repr=False)
    contexts: tuple[str, ...] = ("all",)
    version: str = __version__

    @property
    def n_genes(self) -> int:
        return len(self.genes)

    @property
    def n_perturbations(self) -> int:
        return len(self.perturbations)

    @property
    def n_contexts(self) -> int:
        return len(self.contexts)

    def counts_location(self) -> str:
        """How a user would write the counts' location, for messages."""
        return counts_location(self.layer)

    def split_condition(self, label: str) -> tuple[str, ...]:
        """The genes of a condition label; the control label gives an empty tuple."""
        return split_condition(label, self.combination_delimiter, self.control_label)

    def to_dict(self) -> dict:
        """A JSON- and h5ad-friendly dict: lists for tuples, unset (``None``) fields left out."""
        return {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in dataclasses.asdict(self).items()
            if v is not None
        }

    @classmethod
    def from_dict(cls, data: dict) -> Registry:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise InputError(
                f"registry has unknown fields {sorted(unknown)}; it was written by a newer "
                "samsvae_plus, so upgrade the package"
            )
        values = {}
        for key, value in data.items():
            if isinstance(value, (list, np.ndarray)):
                value = tuple(str(v) for v in value)
            elif isinstance(value, np.generic):
                value = value.item()
            values[key] = value
        return cls(**values)


def split_condition(label: str, delimiter: str, control_label: str) -> tuple[str, ...]:
    """Genes named by a condition label.

    A control token inside a combination (``"control+A"``, as some data sets write single
    perturbations) is dropped, so it means the same as ``"A"``.
    """
    if label == control_label:
        return ()
    parts = [p.strip() for p in str(label).split(delimiter)]
    if any(p == "" for p in parts):
        raise InputError(
            f"condition {label!r} has an empty gene name around {delimiter!r}; "
            "fix the label or pass the right combination_delimiter"
        )
    genes = tuple(p for p in parts if p != control_label)
    if len(set(genes)) != len(genes):
        raise InputError(f"condition {label!r} names the same gene twice; fix the label")
    return genes


def counts_matrix(adata: ad.AnnData, layer: str | None):
    """The raw-count matrix of ``adata`` (``X`` or a layer), with a clear error if absent."""
    if layer is None:
        if adata.X is None:
            raise InputError("adata.X is empty; pass layer= naming the layer with raw counts")
        return adata.X
    if not isinstance(layer, str) or layer not in adata.layers:
        shown = ", ".join(map(repr, adata.layers.keys())) or "none"
        raise InputError(f"layer {layer!r} is not in adata.layers (layers: {shown}); pass layer=")
    return adata.layers[layer]


def counts_location(layer: str | None) -> str:
    """How a user would write where the counts are (``adata.X``, ``adata.layers['counts']``)."""
    return "adata.X" if layer is None else f"adata.layers[{layer!r}]"


def library_sizes(
    adata: ad.AnnData, counts, library_size_key: str | None, where: str = "adata.X"
) -> np.ndarray:
    """Per-cell library sizes: an ``obs`` column, or the sum over the modelled genes.

    Either way every cell must have counts over the modelled genes, and its total must
    fit an int32 (see :func:`~samsvae_plus.data.validate.check_totals_fit_int32`).
    """
    totals = validate.row_sums(counts)
    validate.check_no_empty_cells(totals, adata.obs_names)
    validate.check_totals_fit_int32(totals, adata.obs_names, where)
    if library_size_key is None:
        return totals
    if not isinstance(library_size_key, str) or library_size_key not in adata.obs.columns:
        raise InputError(
            f"library size key {library_size_key!r} is not a column of adata.obs; pass "
            "library_size_key= naming a column, or leave it out to use the sum of counts"
        )
    values = np.asarray(adata.obs[library_size_key])
    validate.check_positive_finite(values, f"adata.obs[{library_size_key!r}]")
    return values.astype(np.float64)


def setup_anndata(
    adata: ad.AnnData,
    perturbation_key: str,
    control_label: str,
    *,
    context_key: str | None = None,
    layer: str | None = None,
    combination_delimiter: str = "+",
    library_size_key: str | None = None,
    exclude: Sequence[str] | str | None = None,
) -> None:
    """Validate ``adata`` and record how the models read it.

    Stores a :class:`Registry` in ``adata.uns["samsvae_plus"]``; nothing else is changed.
    Warns about condition labels that name no perturbation (``unassigned``,
    ``multiplet``, ``doublet``, ``negative``, ``NA``, ``none``, in any case, alone or in a
    combination; see :mod:`~samsvae_plus.data.label_hints`), which would otherwise be
    modelled as the perturbation of a gene of that name.

    Parameters
    ----------
    adata
        Cells x genes, with raw integer UMI counts in ``X`` or in ``layers[layer]``.
    perturbation_key
        ``obs`` column of condition labels; combinations join genes with
        ``combination_delimiter`` (``"KLF1+MAP2K6"``).
    control_label
        The label of unperturbed (non-targeting) cells; at least one cell must carry it.
    context_key
        Optional ``obs`` column of cell type or cell line.
    layer
        Layer with raw counts; ``None`` reads ``X``.
    combination_delimiter
        Separator of genes in combination labels.
    library_size_key
        Optional ``obs`` column of library sizes; by default the sum of counts over the
        genes of ``adata``.
    exclude
        Condition labels (one or a list) whose cells are left out of the model, such as
        ``["unassigned", "multiplet"]``. Each must label some cell, and not the controls.
        Their cells are not checked or registered, and every verb that takes cells
        (``train``, ``iwelbo``, ``check_ate``, ``predict``) drops them, so the model's
        split and any per-cell output number the remaining cells, in order. A backed
        AnnData that still holds such cells is refused: write a file without them.

    Raises
    ------
    InputError
        For non-integer, negative, NaN or infinite counts; float16, bool or object
        matrices; a count or a cell total above the int32 range; cells with zero counts; a
        missing key or layer; a missing control; missing, empty, non-NFC or non-printable
        labels; unused categories; and empty, duplicate, non-NFC or non-printable gene or
        cell names. The message names the problem and the fix; see
        :mod:`samsvae_plus.data.validate`.
    """
    validate.check_anndata(adata)
    validate.check_delimiter(combination_delimiter)
    control_label = validate.check_control_label(control_label)
    exclude = _check_exclude(exclude, control_label)

    validate.check_unique_names(adata.var_names, "gene")
    validate.check_unique_names(adata.obs_names, "cell")
    labels = validate.check_obs_column(adata.obs, perturbation_key, "perturbation")
    context_labels = None
    if context_key is not None:
        context_labels = validate.check_obs_column(adata.obs, context_key, "context")
    cells = adata
    if exclude is not None:
        _check_excluded_labels_present(exclude, labels, perturbation_key)
        keep = ~labels.isin(exclude).to_numpy()
        logger.info(
            "leaving out %d of %d cells, labelled %s (excluded)",
            int((~keep).sum()),
            adata.n_obs,
            ", ".join(map(repr, exclude)),
        )
        cells, labels = adata[keep], labels[keep]
        context_labels = None if context_labels is None else context_labels[keep]
    contexts: tuple[str, ...] = ("all",)
    if context_labels is not None:
        contexts = tuple(sorted(context_labels.unique()))
    if not (labels == control_label).any():
        raise InputError(
            f"no cell has the control label {control_label!r} in adata.obs[{perturbation_key!r}] "
            f"{label_hint(control_label, labels)}; pass control_label= with the label of "
            "unperturbed cells"
        )

    counts = counts_matrix(cells, layer)
    validate.check_counts(counts, counts_location(layer))
    library_sizes(cells, counts, library_size_key, counts_location(layer))

    conditions = tuple(sorted(labels.unique()))
    genes_per_condition = [
        split_condition(c, combination_delimiter, control_label) for c in conditions
    ]
    perturbations = tuple(sorted({g for genes in genes_per_condition for g in genes}))
    if not perturbations:
        raise InputError(
            f"every cell is a control in adata.obs[{perturbation_key!r}]; the model needs "
            "perturbed cells to learn effects, so include them (or pass the right "
            "perturbation_key=)"
        )

    _warn_about_non_perturbations(labels, perturbation_key, combination_delimiter, control_label)
    registry = Registry(
        perturbation_key=perturbation_key,
        control_label=control_label,
        combination_delimiter=combination_delimiter,
        context_key=context_key,
        layer=layer,
        library_size_key=library_size_key,
        exclude=exclude,
        genes=tuple(map(str, adata.var_names)),
        perturbations=perturbations,
        conditions=conditions,
        contexts=contexts,
    )
    adata.uns[UNS_KEY] = registry.to_dict()


def _check_exclude(exclude, control_label: str) -> tuple[str, ...] | None:
    """``exclude`` as a tuple of labels (None for none); the control label is refused."""
    if exclude is None or (isinstance(exclude, (list, tuple)) and len(exclude) == 0):
        return None
    labels = tuple(dict.fromkeys(validate.check_request_labels(exclude, "exclude")))
    if control_label in labels:
        raise InputError(
            f"exclude names the control label {control_label!r}; the model needs control "
            "cells, so leave it out of exclude"
        )
    return labels


def _check_excluded_labels_present(
    exclude: tuple[str, ...], labels: pd.Series, perturbation_key: str
) -> None:
    """Require that every excluded label labels some cell: one that labels none is a typo."""
    for label in exclude:
        if not (labels == label).any():
            raise InputError(
                f"exclude names {label!r}, which no cell has in adata.obs[{perturbation_key!r}] "
                f"{label_hint(label, labels)}; pass labels of that column"
            )


def _warn_about_non_perturbations(
    labels: pd.Series, perturbation_key: str, delimiter: str, control_label: str
) -> None:
    """Warn once about the registered labels that name no perturbation, with their cells."""
    found = non_perturbation_labels(labels, delimiter, control_label)
    if not found:
        return
    shown = ", ".join(f"{label!r} ({cell_count(n)})" for label, n in found.items())
    warnings.warn(
        f"adata.obs[{perturbation_key!r}] has labels that look like no perturbation: {shown}; "
        f"they are modelled as perturbed genes unless you pass exclude={list(found)!r} to "
        "leave those cells out",
        UserWarning,
        stacklevel=3,
    )


def get_registry(adata: ad.AnnData) -> Registry:
    """The registry stored by :func:`setup_anndata`, or a clear error if there is none
    (or ``adata`` is not an AnnData): the gate of a model's construction. The cells are
    checked against it by the verbs that use them."""
    validate.check_is_anndata(adata)
    if UNS_KEY not in adata.uns:
        raise InputError(
            "adata has not been registered; call samsvae_plus.setup_anndata(adata, "
            "perturbation_key=..., control_label=...) first"
        )
    return Registry.from_dict(dict(adata.uns[UNS_KEY]))
