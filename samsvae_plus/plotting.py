"""Plots (``sp.pl``). Each takes ``ax=None`` and returns the figure or axes; none calls show()."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def _axes(ax, figsize):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def masks(
    mask_probabilities: pd.DataFrame,
    *,
    ax=None,
    cmap: str = "viridis",
    return_fig: bool = False,
):
    """Heatmap of mask probabilities (perturbations x latent dims).

    Parameters
    ----------
    mask_probabilities
        ``model.mask_probabilities()``.
    ax
        Axes to draw into; a new figure is made when ``None``.
    return_fig
        Return the figure instead of the axes.
    """
    fig, ax = _axes(
        ax, (0.25 * mask_probabilities.shape[1] + 3, 0.12 * mask_probabilities.shape[0] + 2)
    )
    image = ax.imshow(
        mask_probabilities.to_numpy(),
        aspect="auto",
        cmap=cmap,
        vmin=0,
        vmax=1,
        interpolation="nearest",
    )
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("perturbation")
    ax.set_xticks(
        np.arange(mask_probabilities.shape[1]), mask_probabilities.columns, rotation=90, fontsize=6
    )
    if mask_probabilities.shape[0] <= 80:
        ax.set_yticks(np.arange(mask_probabilities.shape[0]), mask_probabilities.index, fontsize=6)
    fig.colorbar(image, ax=ax, label="q(mask = 1)")
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
