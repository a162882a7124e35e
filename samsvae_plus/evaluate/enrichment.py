"""Which pathways share a latent dimension: hypergeometric tests with BH correction."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control, hypergeom

ENRICHMENT_COLUMNS = [
    "dimension",
    "gene_set",
    "overlap",
    "n_active",
    "in_set",
    "universe",
    "fold_enrichment",
    "p_value",
    "q_value",
    "members",
]


def dimension_enrichment(
    mask_probabilities: pd.DataFrame,
    membership: pd.DataFrame,
    *,
    threshold: float = 0.5,
) -> pd.DataFrame:
    """Over-representation of each gene set among the perturbations active in each dimension.

    For dimension ``k`` the active perturbations are those with ``q(m_tk = 1) >
    threshold``. The universe is the perturbations annotated in at least one set of
    ``membership`` (un-annotated genes would only dilute every test); for set ``S`` the
    p-value is ``P(X >= overlap)`` with ``X ~ Hypergeometric(universe, |S|, n_active)``.
    All (dimension, set) pairs with at least one active perturbation are tested, and
    q-values are Benjamini-Hochberg over all of them.

    Parameters
    ----------
    mask_probabilities
        Perturbations x latent dimensions.
    membership
        Perturbations x sets, boolean (:func:`~samsvae_plus.evaluate.gene_sets.membership`).
    threshold
        Probability above which a mask entry is active.

    Returns
    -------
    DataFrame
        One row per test, columns :data:`ENRICHMENT_COLUMNS`, sorted by p-value.
    """
    universe = membership.index[membership.any(axis=1)]
    universe = universe.intersection(mask_probabilities.index, sort=False)
    active = mask_probabilities.loc[universe].to_numpy() > threshold  # universe x dims
    sets = membership.loc[universe].to_numpy()  # universe x sets
    n = len(universe)
    rows = []
    for k, dimension in enumerate(mask_probabilities.columns):
        n_active = int(active[:, k].sum())
        if n_active == 0:
            continue
        overlap = active[:, k].astype(int) @ sets.astype(int)  # per set
        sizes = sets.sum(axis=0).astype(int)
        p_values = hypergeom.sf(overlap - 1, n, sizes, n_active)
        for j, name in enumerate(membership.columns):
            rows.append(
                {
                    "dimension": dimension,
                    "gene_set": name,
                    "overlap": int(overlap[j]),
                    "n_active": n_active,
                    "in_set": int(sizes[j]),
                    "universe": n,
                    "fold_enrichment": (overlap[j] / n_active) / (sizes[j] / n)
                    if sizes[j]
                    else np.nan,
                    "p_value": float(p_values[j]),
                    "members": ";".join(universe[active[:, k] & sets[:, j]]),
                }
            )
    table = pd.DataFrame(rows, columns=[c for c in ENRICHMENT_COLUMNS if c != "q_value"])
    # The scorer keeps its own bit-exact BH (challenge/differential_expression.py); this
    # side has no such constraint and uses scipy's.
    q_values = false_discovery_control(table["p_value"].to_numpy(dtype=float), method="bh")
    table.insert(8, "q_value", q_values)
    return table.sort_values(["p_value", "dimension", "gene_set"], kind="stable").reset_index(
        drop=True
    )
