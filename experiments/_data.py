"""The data sets of the tables, loaded from a config entry and registered.

An entry either simulates (``simulate: {...}``, drawn again for every seed, so that the
sd over seeds includes the data) or names a loader of ``sp.datasets`` (``loader: NAME``,
the same cells for every seed). ``max_cells_per_group`` keeps at most that many cells of
each (condition, cell type): smoke runs use it so that every condition stays registered.
"""

from __future__ import annotations

from functools import cache

import anndata as ad

import samsvae_plus as sp

KEY, CONTROL, CONTEXT = "condition", "control", "cell_type"


@cache
def _read(loader: str) -> ad.AnnData:
    """A real data set, read once per process (every seed uses the same cells)."""
    return getattr(sp.datasets, loader)()


def load_dataset(spec: dict, seed: int) -> tuple[ad.AnnData, dict | None]:
    """The registered AnnData of one config entry, and the simulator's truth (None for
    real data)."""
    if "simulate" in spec:
        adata = sp.datasets.simulate(**spec["simulate"], seed=seed)
    else:
        adata = _read(spec["loader"]).copy()
    if spec.get("max_cells_per_group"):
        keep = adata.obs.groupby([KEY, CONTEXT], observed=True).head(spec["max_cells_per_group"])
        adata = adata[keep.index].copy()
    sp.setup_anndata(adata, KEY, CONTROL, context_key=CONTEXT)
    return adata, adata.uns.get("simulation")
