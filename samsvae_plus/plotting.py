"""Plots (``sp.pl``). Each takes ``ax=None`` and returns the figure or axes; none calls show().

:func:`save_figure` writes one to a file, cropped to its labels.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def _axes(ax, figsize):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def dimension_order(mask_probabilities: pd.DataFrame) -> list:
    """Latent dimensions ordered by average-linkage clustering of their mask columns, so
    that dimensions used by the same perturbations sit side by side."""
    from scipy.cluster.hierarchy import leaves_list, linkage

    values = mask_probabilities.to_numpy(dtype=float).T
    if values.shape[0] < 3:
        return list(mask_probabilities.columns)
    order = leaves_list(linkage(values, method="average", metric="euclidean"))
    return list(mask_probabilities.columns[order])


def perturbation_order(mask_probabilities: pd.DataFrame, groups: pd.Series | None) -> list:
    """Perturbations grouped by ``groups`` (largest group first, unassigned last) and,
    within a group, by the position of their strongest dimension."""
    strongest = pd.Series(
        np.argmax(mask_probabilities.to_numpy(), axis=1), index=mask_probabilities.index
    )
    if groups is None:
        return list(strongest.sort_values(kind="stable").index)
    labels = groups.reindex(mask_probabilities.index)
    sizes = labels.value_counts()
    rank = labels.map({name: i for i, name in enumerate(sizes.index)}).fillna(len(sizes))
    table = pd.DataFrame({"rank": rank, "strongest": strongest})
    return list(table.sort_values(["rank", "strongest"], kind="stable").index)


def masks(
    mask_probabilities: pd.DataFrame,
    *,
    groups: pd.Series | None = None,
    order_dims: bool = True,
    ax=None,
    cmap: str = "viridis",
    return_fig: bool = False,
):
    """Heatmap of mask probabilities (perturbations x latent dims).

    Parameters
    ----------
    mask_probabilities
        ``model.mask_probabilities()``.
    groups
        Optional perturbation -> pathway labels (e.g.
        :func:`~samsvae_plus.evaluate.gene_sets.assign_pathways`): rows are grouped by
        pathway, largest first, unassigned last, and the groups are separated and named.
    order_dims
        Order the dimensions by hierarchical clustering of their columns
        (:func:`dimension_order`); otherwise keep their order.
    ax
        Axes to draw into; a new figure is made when ``None``.
    return_fig
        Return the figure instead of the axes.
    """
    columns = (
        dimension_order(mask_probabilities) if order_dims else list(mask_probabilities.columns)
    )
    rows = perturbation_order(mask_probabilities[columns], groups)
    table = mask_probabilities.loc[rows, columns]
    fig, ax = _axes(ax, (0.25 * table.shape[1] + 3, 0.12 * table.shape[0] + 2))
    image = ax.imshow(
        table.to_numpy(), aspect="auto", cmap=cmap, vmin=0, vmax=1, interpolation="nearest"
    )
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("perturbation")
    ax.set_xticks(np.arange(table.shape[1]), table.columns, rotation=90, fontsize=6)
    if table.shape[0] <= 80:
        ax.set_yticks(np.arange(table.shape[0]), table.index, fontsize=6)
    if groups is not None:
        labels = groups.reindex(table.index).fillna("unassigned").to_numpy()
        bounds = np.flatnonzero(labels[1:] != labels[:-1]) + 1
        for b in bounds:
            ax.axhline(b - 0.5, color="white", linewidth=1.0)
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [len(labels)]])
        for start, end in zip(starts, ends, strict=True):
            ax.text(
                table.shape[1] - 0.4,
                (start + end - 1) / 2,
                f" {labels[start]}",
                va="center",
                ha="left",
                fontsize=6,
                clip_on=False,
            )
    # group names take the right margin, so the colour bar goes above them
    placement = {"location": "top", "shrink": 0.5} if groups is not None else {}
    fig.colorbar(image, ax=ax, label="q(mask = 1)", **placement)
    return fig if return_fig else ax


def training_curves(history, *, ax=None, return_fig: bool = False):
    """Train and validation ELBO per epoch (nats per cell) from ``model.history``."""
    fig, ax = _axes(ax, (5, 3.5))
    ax.plot(history.train_elbo, label="train")
    if history.validation_elbo:
        ax.plot(history.validation_elbo, label="validation")
        ax.axvline(history.best_epoch, color="grey", linestyle=":", label="best")
    ax.set_xlabel("epoch")
    ax.set_ylabel("ELBO per cell (nats)")
    ax.legend()
    return fig if return_fig else ax


def ate_scatter(
    reference: pd.DataFrame,
    predicted: pd.DataFrame,
    *,
    top_n: int | None = None,
    ax=None,
    xlabel: str = "data ATE",
    ylabel: str = "model ATE",
    return_fig: bool = False,
):
    """Model against reference ATE, one point per perturbation x gene, with r and R².

    Parameters
    ----------
    reference, predicted
        ATE tables (rows x genes), aligned by label (e.g. ``check.reference`` and
        ``check.prediction`` of :meth:`~samsvae_plus.model.base.PerturbationModel.check_ate`).
    top_n
        Only each row's ``top_n`` genes of largest ``|reference|``.
    """
    from samsvae_plus.evaluate.ate import aligned_entries, ate_pearson, ate_r2

    predicted_values, reference_values = aligned_entries(predicted, reference, top_n)
    fig, ax = _axes(ax, (4, 4))
    ax.scatter(reference_values, predicted_values, s=2, alpha=0.3, linewidths=0, rasterized=True)
    low = float(min(reference_values.min(), predicted_values.min()))
    high = float(max(reference_values.max(), predicted_values.max()))
    ax.plot([low, high], [low, high], color="grey", linestyle=":", linewidth=1)
    r = ate_pearson(predicted, reference, top_n=top_n)
    r2 = ate_r2(predicted, reference, top_n=top_n)
    ax.text(0.04, 0.96, f"r = {r:.3f}\nR² = {r2:.3f}", transform=ax.transAxes, va="top")
    ax.set_xlabel(xlabel + ("" if top_n is None else f" (top {top_n} genes)"))
    ax.set_ylabel(ylabel)
    return fig if return_fig else ax


def calibration(
    table: pd.DataFrame, *, label: str | None = None, ax=None, return_fig: bool = False
):
    """Empirical coverage of central intervals against their nominal level.

    Parameters
    ----------
    table
        Columns ``nominal`` and ``coverage`` (``check.calibration``). Call again on the
        same ``ax`` with another ``label`` to compare checks.
    """
    fig, ax = _axes(ax, (4, 4))
    if not any(line.get_label() == "ideal" for line in ax.get_lines()):
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="ideal")
    ax.plot(table["nominal"], table["coverage"], marker="o", label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("nominal level of the central interval")
    ax.set_ylabel("fraction of reference ATEs inside")
    if label is not None:
        ax.legend(loc="upper left")
    return fig if return_fig else ax


# Dot area (points squared) per perturbation shared by a dimension and a set.
ENRICHMENT_DOT_AREA = 30


def enrichment(
    table: pd.DataFrame,
    *,
    max_sets: int = 20,
    q_threshold: float | None = 0.1,
    ax=None,
    return_fig: bool = False,
):
    """Dot plot of per-dimension gene-set enrichment.

    One dot per (dimension, set) test with at least one shared perturbation that passes
    ``q_threshold``: size is the overlap (legend above the plot), colour ``-log10 q``. The
    ``max_sets`` sets with the smallest q-value are shown. When no test passes, the axes
    say so instead of drawing dots.

    Parameters
    ----------
    table
        :func:`~samsvae_plus.evaluate.enrichment.dimension_enrichment` output (may be empty).
    max_sets
        Sets shown at most.
    q_threshold
        Largest BH q-value shown; ``None`` shows every test with an overlap, significant
        or not.
    ax
        Axes to draw into; a new figure is made when ``None``.
    return_fig
        Return the figure instead of the axes.
    """
    # An empty table (no set shares a perturbation with the masks) comes with object
    # columns, which matplotlib refuses as sizes.
    overlap = pd.to_numeric(table["overlap"]).astype(float)
    q_values = pd.to_numeric(table["q_value"]).astype(float)
    keep = (overlap > 0) & (q_values <= q_threshold if q_threshold is not None else True)
    shown = pd.DataFrame(
        {
            "dimension": table["dimension"][keep],
            "gene_set": table["gene_set"][keep].astype(str),
            "overlap": overlap[keep],
            "q_value": q_values[keep],
        }
    )
    if shown.empty:
        fig, ax = _axes(ax, (4, 2))
        ax.text(0.5, 0.5, _no_enrichment_message(overlap, q_threshold), ha="center", va="center")
        ax.set_axis_off()
        return fig if return_fig else ax
    best = shown.groupby("gene_set")["q_value"].min().sort_values(kind="stable")
    sets = list(best.index[:max_sets])
    shown = shown[shown["gene_set"].isin(sets)]
    dims = sorted(shown["dimension"].unique(), key=lambda d: (len(str(d)), str(d)))
    fig, ax = _axes(ax, (0.35 * max(len(dims), 4) + 4, 0.3 * max(len(sets), 3) + 1.5))
    x = pd.Index(dims).get_indexer(shown["dimension"])
    y = pd.Index(sets).get_indexer(shown["gene_set"])
    colour = -np.log10(shown["q_value"].clip(lower=1e-300))
    points = ax.scatter(
        x,
        y,
        s=ENRICHMENT_DOT_AREA * shown["overlap"],
        c=colour,
        cmap="viridis",
        vmin=0,
        # at least q = 0.1 at the top, so that a plot without any hit does not look like one
        vmax=max(1.0, float(colour.max())),
    )
    ax.set_xticks(np.arange(len(dims)), dims, rotation=90, fontsize=7)
    ax.set_yticks(
        np.arange(len(sets)), [s if len(s) <= 45 else s[:42] + "..." for s in sets], fontsize=7
    )
    ax.set_xlim(-0.7, max(len(dims), 1) - 0.3)
    ax.set_ylim(len(sets) - 0.5, -0.5)
    ax.set_xlabel("latent dimension")
    _overlap_legend(ax, shown["overlap"].to_numpy())
    fig.colorbar(points, ax=ax, label="-log10 q (BH)")
    return fig if return_fig else ax


def _no_enrichment_message(overlap: pd.Series, q_threshold: float | None) -> str:
    lines = [] if q_threshold is None else [f"no set passes q ≤ {q_threshold:g}"]
    if not (overlap > 0).any():
        lines.append("(no set shares a perturbation with an active dimension)")
    return "\n".join(lines)


def _overlap_legend(ax, overlaps: np.ndarray, n_entries: int = 4) -> None:
    """A legend of dot sizes, in a row above the axes (the colour bar takes the right)."""
    from matplotlib.lines import Line2D

    values = np.unique(overlaps.astype(int))
    if len(values) > n_entries:
        values = np.unique(np.round(np.linspace(values[0], values[-1], n_entries)).astype(int))
    # A marker's size is its diameter in points; a scatter size is an area in points².
    handles = [
        Line2D(
            [],
            [],
            linestyle="",
            marker="o",
            markersize=np.sqrt(ENRICHMENT_DOT_AREA * value),
            markerfacecolor="grey",
            markeredgecolor="grey",
            label=str(value),
        )
        for value in values
    ]
    ax.legend(
        handles=handles,
        title="perturbations shared (overlap)",
        loc="lower left",
        bbox_to_anchor=(0.0, 1.02),
        ncol=len(handles),
        frameon=False,
        fontsize=7,
        title_fontsize=7,
    )


def save_figure(figure, path: str | os.PathLike, *, dpi: int = 120) -> None:
    """Save ``figure`` to ``path`` cropped to its artists, and close it.

    The crop (``bbox_inches="tight"``) keeps axis labels, colour bars and legends that
    stick out of the figure's own area. The image is rendered in memory and written
    atomically, so a figure that fails to render leaves no file behind.

    Parameters
    ----------
    figure
        A matplotlib figure (``return_fig=True`` of the plots here).
    path
        Output file; the format follows its suffix (``.png``, ``.pdf``, ``.svg``).
    dpi
        Resolution of raster formats.
    """
    from samsvae_plus._atomic import atomic_write_bytes

    path = Path(path)
    buffer = io.BytesIO()
    try:
        figure.savefig(
            buffer, format=path.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight"
        )
    finally:
        plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
