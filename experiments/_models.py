"""Model rows of the tables: a config entry -> a trained model of the family.

A row is ``{model: CLASS, label: TEXT, guide: TEXT, options: {...}}``: ``CLASS`` is a
class of ``samsvae_plus`` (``SAMSVAE``, ``CPAVAE``, ``SVAEPlus``, ``ConditionalVAE``),
``options`` its constructor's keywords, ``label`` and ``guide`` the names the table shows.
"""

from __future__ import annotations

import time

import anndata as ad

import samsvae_plus as sp
from samsvae_plus.data.splits import Split


def row_name(row: dict) -> str:
    return f"{row['label']} / {row['guide']}"


def fit(
    adata: ad.AnnData,
    row: dict,
    *,
    latent_dim: int,
    training: dict,
    split: Split,
    seed: int,
    device: str = "auto",
) -> tuple[sp.SAMSVAE, float]:
    """Build the row's model on ``adata`` and train it on ``split``; the model and its
    training seconds."""
    model = getattr(sp, row["model"])(adata, latent_dim=latent_dim, **row.get("options", {}))
    started = time.perf_counter()
    model.train(**training, split=split, seed=seed, device=device, progress=False)
    return model, time.perf_counter() - started
