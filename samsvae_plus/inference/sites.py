"""Which sites of a Pyro trace are global, local or observed, and their log-densities.

Every model of the family follows one convention, so evaluation code can work from traces
alone and never from a particular model's site names:

- sites inside the plate named :data:`CELL_PLATE` belong to one cell each: the observed
  ones (counts at ``"x"``) are data, the unobserved ones are local latents (``z_basal`` in
  SAMS-VAE, ``z`` in other models);
- unobserved sites outside that plate are global latents (masks, embeddings).
"""

from __future__ import annotations

import torch
from pyro.distributions.util import scale_and_mask
from pyro.poutine import Trace

CELL_PLATE = "cells"


def in_cell_plate(site: dict) -> bool:
    """Whether a trace site (or Pyro message) lies inside the cell plate."""
    return any(frame.name == CELL_PLATE for frame in site["cond_indep_stack"])


def _sample_sites(trace: Trace):
    return (
        (name, site)
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["infer"].get("is_auxiliary", False)
    )


def local_latent_sites(trace: Trace) -> list[str]:
    """Names of the unobserved sample sites inside the cell plate."""
    return [n for n, s in _sample_sites(trace) if in_cell_plate(s) and not s["is_observed"]]


def observed_sites(trace: Trace) -> list[str]:
    """Names of the observed sample sites inside the cell plate (the data)."""
    return [n for n, s in _sample_sites(trace) if in_cell_plate(s) and s["is_observed"]]


def global_latent_sites(trace: Trace) -> list[str]:
    """Names of the unobserved sample sites outside the cell plate."""
    return [n for n, s in _sample_sites(trace) if not in_cell_plate(s) and not s["is_observed"]]


def _log_prob(site: dict) -> torch.Tensor:
    # Unscaled: evaluation weighs every scored cell once, whatever the plate's subsampling.
    log_p = site["fn"].log_prob(site["value"], *site["args"], **site["kwargs"])
    return scale_and_mask(log_p, 1.0, site["mask"])


def cell_log_prob(site: dict) -> torch.Tensor:
    """Log-density of a cell-plate site, one value per cell of the batch (unscaled).

    Dimensions other than the cell plate's (event dimensions, nested plates) are summed.
    """
    log_p = _log_prob(site)
    dim = next(f.dim for f in site["cond_indep_stack"] if f.name == CELL_PLATE)
    if log_p.dim() < -dim:
        raise ValueError(
            f"site {site['name']!r} has log_prob shape {tuple(log_p.shape)}, which lacks the "
            f"cell plate's dimension {dim}"
        )
    per_cell = log_p.movedim(dim, 0)
    return per_cell.reshape(per_cell.shape[0], -1).sum(-1)


def total_log_prob(trace: Trace, names: list[str]) -> torch.Tensor:
    """Sum of the unscaled log-densities of the named sites (0 when there are none)."""
    return sum((_log_prob(trace.nodes[name]).sum() for name in names), torch.zeros(()))


def summed_cell_log_prob(trace: Trace, names: list[str], n_cells: int) -> torch.Tensor:
    """Per-cell sum of :func:`cell_log_prob` over the named sites (zeros when there are none)."""
    terms = [cell_log_prob(trace.nodes[name]) for name in names]
    return torch.stack(terms).sum(0) if terms else torch.zeros(n_cells)
