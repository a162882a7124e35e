"""The Virtual Cell Challenge's cell-mean baseline.

The baseline predicts one expression vector for every perturbation: the unweighted mean
of all group means of a reference AnnData (normally the training data), its control group
included. It gets as many identical cells per perturbation as the real data has, and the
reference's control cells (normalised like the reference) serve as its controls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from samsvae_plus.challenge.inputs import ScorerInput, check_input, check_same_genes
from samsvae_plus.challenge.layout import SCORER_KEY, VCC_CONTROL_LABEL
from samsvae_plus.challenge.pseudobulk import Normalised, block_sums, group_cells, group_means
from samsvae_plus.challenge.summary import FileSummary, summarise_constant

if TYPE_CHECKING:
    import scipy.sparse as sp


def cell_mean_vector(
    reference: ScorerInput, control_label: str
) -> tuple[np.ndarray, sp.csr_matrix]:
    """The baseline vector of a validated reference, and its normalised control cells.

    Returns
    -------
    values
        Mean over every group (control included) of the group's pseudobulk, in the data
        dtype.
    control_block
        The reference's control cells, normalised, as zero-free CSR.
    """
    norm = Normalised(reference)
    groups = group_cells(reference.labels)
    sums = np.empty((groups.labels.size, norm.n_genes))
    control_block = None
    for i in range(groups.labels.size):
        block = norm.block(groups.rows(i))
        sums[i] = block_sums(block, norm.n_genes)
        if groups.labels[i] == control_label:
            control_block = block
    means = group_means(sums, groups.sizes, norm.dtype)
    values = means.astype(np.float64).mean(axis=0).astype(norm.dtype)
    assert control_block is not None  # check_input guarantees the control exists
    return values, control_block


def baseline_summary(reference: ScorerInput, real: FileSummary, control_label: str) -> FileSummary:
    """Summary of the cell-mean baseline built from a validated ``reference`` for ``real``.

    The baseline's cells are never materialised: identical cells have a closed-form
    summary, so memory stays bounded by the reference.
    """
    values, control_block = cell_mean_vector(reference, control_label)
    return summarise_constant(values, real.labels, real.n_cells, control_block)


def cell_mean_baseline(
    reference,
    real,
    *,
    perturbation_key: str = SCORER_KEY,
    control_label: str = VCC_CONTROL_LABEL,
):
    """Materialise the cell-mean baseline as an AnnData, in the scorer layout.

    Scoring it with :func:`~samsvae_plus.metrics.challenge_score` gives the same result as
    passing ``reference=`` directly, which avoids building the (dense) rows.

    Parameters
    ----------
    reference
        AnnData whose group means define the baseline (normally the training data).
    real
        The real AnnData; the baseline gets as many cells per perturbation as it has.
    perturbation_key, control_label
        Perturbation column and control label, shared by both.

    Returns
    -------
    anndata.AnnData
        float32 (or float64) CSR, ``obs[perturbation_key]``, genes in the real order.
    """
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    real_in = check_input(real, "real", perturbation_key, control_label)
    ref = check_input(reference, "reference", perturbation_key, control_label)
    check_same_genes(real_in, ref)
    values, control_block = cell_mean_vector(ref, control_label)
    groups = group_cells(real_in.labels)
    perts = [label for label in groups.labels if label != control_label]
    sizes = groups.sizes[groups.labels != control_label]
    labels = np.repeat(np.asarray(perts, dtype=object), sizes)
    rows = sp.csr_matrix(np.broadcast_to(values, (int(sizes.sum()), values.size)))
    X = sp.vstack([rows, control_block], format="csr").astype(values.dtype)
    labels = np.concatenate([labels, np.full(control_block.shape[0], control_label, object)])
    obs = pd.DataFrame(
        {perturbation_key: pd.Categorical(labels)},
        index=pd.Index([f"baseline_{i}" for i in range(labels.size)]),
    )
    return ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=real_in.genes.copy()))
