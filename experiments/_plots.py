"""The tables' figures: mean ± sd over seeds, one panel per data set.

``bars`` draws one bar per table row (T1, T4, T5); ``trends`` draws one line per model
against a fraction (T2, T3). Both read the per-seed runs, so the figure and the table
are computed from the same numbers. ``mask_figures`` draws one model's masks against a
gene-set collection (F1).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _common import save_figure  # noqa: E402

import samsvae_plus as sp  # noqa: E402


def _panels(n: int, width: float = 4.5, height: float = 3.5):
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    return fig, axes[0]


def bars(runs: pd.DataFrame, metric: str, row: str, panel: str, *, xlabel: str | None = None):
    """Horizontal bars of ``metric`` per ``row``, with sd error bars, per ``panel``."""
    names = list(pd.unique(runs[panel]))
    fig, axes = _panels(len(names), height=0.35 * runs[row].nunique() + 1.2)
    for ax, name in zip(axes, names, strict=True):
        grouped = runs[runs[panel] == name].groupby(row, sort=False)[metric]
        mean, sd = grouped.mean(), grouped.std(ddof=1)
        y = np.arange(len(mean))
        ax.barh(y, mean.to_numpy(), xerr=sd.fillna(0).to_numpy(), color="C0", alpha=0.8)
        ax.set_yticks(y, mean.index if ax is axes[0] else [""] * len(y), fontsize=7)
        ax.invert_yaxis()
        ax.set_title(str(name), fontsize=9)
        ax.set_xlabel(xlabel or metric, fontsize=8)
    fig.tight_layout()
    return fig


def trends(
    runs: pd.DataFrame, metric: str, x: str, line: str, panel: str, *, ylabel: str | None = None
):
    """``metric`` against ``x``, one line (mean ± sd over seeds) per ``line``, per ``panel``."""
    names = list(pd.unique(runs[panel]))
    fig, axes = _panels(len(names))
    for ax, name in zip(axes, names, strict=True):
        part = runs[runs[panel] == name]
        for label, group in part.groupby(line, sort=False):
            stats = group.groupby(x)[metric].agg(["mean", "std"])
            if stats["mean"].notna().any():
                ax.errorbar(
                    stats.index,
                    stats["mean"],
                    yerr=stats["std"],
                    label=label,
                    capsize=2,
                    marker="o",
                )
        ax.set_title(str(name), fontsize=9)
        ax.set_xlabel(x, fontsize=8)
        ax.set_ylabel(ylabel or metric, fontsize=8)
    axes[-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def mask_figures(out, stem: str, seed: int, probabilities, report, title: str) -> None:
    """``masks_STEM``, the mask heatmap grouped by the report's pathways, and, when any
    enrichment test was run, ``enrichment_STEM``, its dot plot (PNG and PDF, in ``out``)."""
    fig = sp.pl.masks(probabilities, groups=report.labels, return_fig=True)
    fig.suptitle(f"{title}, grouped by {report.collection} (seed {seed})", fontsize=9)
    save_figure(fig, out, f"masks_{stem}")
    if len(report.enrichment):
        save_figure(sp.pl.enrichment(report.enrichment, return_fig=True), out, f"enrichment_{stem}")
