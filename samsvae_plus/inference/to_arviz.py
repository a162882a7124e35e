"""Posterior draws as an ArviZ object, on ArviZ 0.x (``InferenceData``) and 1.x (``DataTree``).

Only numpy goes in, so this module neither imports torch nor needs a model; the model's
verb (:meth:`~samsvae_plus.model.base.PerturbationModel.to_inference_data`) draws the arrays.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# Named dimensions of the global latent sites the family's models use; other sites get
# ArviZ's default names (``<site>_dim_0``, ...).
SITE_DIMS: dict[str, tuple[str, ...]] = {
    "mask": ("perturbation", "latent"),
    "embedding": ("perturbation", "latent"),
    "mask_prob": ("perturbation", "latent"),
    "ate": ("condition", "gene"),
}


def _uses_group_keywords(from_dict) -> bool:
    """ArviZ < 1 takes each group as a keyword (``posterior=...``); 1.x takes one dict."""
    return "posterior" in inspect.signature(from_dict).parameters


def build_inference_data(
    posterior: Mapping[str, np.ndarray],
    coords: Mapping[str, Sequence[Any]],
    *,
    dims: Mapping[str, Sequence[str]] | None = None,
    attrs: Mapping[str, Any] | None = None,
):
    """An ArviZ object with one ``posterior`` group built by ``az.from_dict``.

    Parameters
    ----------
    posterior
        Variable name -> array of shape ``(chain, draw, ...)``.
    coords
        Coordinate values of the named dimensions.
    dims
        Variable name -> dimension names after ``(chain, draw)``; by default
        :data:`SITE_DIMS` for the names it knows.
    attrs
        Attributes stored on the group (model class, seed, ...).

    Returns
    -------
    arviz.InferenceData or xarray.DataTree
        Whichever the installed ArviZ builds.
    """
    import arviz as az

    posterior = {name: np.asarray(value) for name, value in posterior.items()}
    if dims is None:
        dims = {name: SITE_DIMS[name] for name in posterior if name in SITE_DIMS}
    dims = {name: list(d) for name, d in dims.items() if name in posterior}
    used = {d for names in dims.values() for d in names}
    coords = {name: list(values) for name, values in coords.items() if name in used}
    attrs = dict(attrs or {})
    if _uses_group_keywords(az.from_dict):
        return az.from_dict(posterior=posterior, coords=coords, dims=dims, attrs=attrs)
    # ArviZ 1.x keys attributes by group.
    return az.from_dict(
        {"posterior": posterior}, coords=coords, dims=dims, attrs={"posterior": attrs}
    )
