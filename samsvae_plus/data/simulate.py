"""A negative-binomial Perturb-seq simulator with known ground truth.

The generative process is the sparse additive model that SAMS-VAE assumes, so every
learned quantity has a true value to be compared with:

- context ``c`` of each cell is uniform; basal state ``z_basal ~ N(mu_c, I)``;
- perturbation ``t`` shifts the latent state by ``m_t * e_t`` with a sparse binary mask
  ``m_t`` (density ``mask_density``, at least one active dimension) and an embedding whose
  active entries have magnitude ``effect_size * U(0.5, 1.5)`` and a random sign;
  combinations add their genes' shifts;
- expression ``rho = softmax(b + z W)`` with a sparse "gene program" matrix ``W``;
- counts ``x ~ NB(mean = l * rho, inverse dispersion theta_g)`` with log-normal library
  sizes ``l`` and log-normal per-gene ``theta_g``.

The true average treatment effect (ATE) is estimated by Monte Carlo on the same
log-normalised scale the evaluation uses, ``log2(1e4 x / sum(x) + 1)``, at library size
1e4, with common random numbers between each condition and control so that the noise
cancels. Contexts are weighted equally in the pooled ATE. Its Monte Carlo standard error
is stored beside it: intervals checked against the truth must allow for it.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from samsvae_plus.data.transforms import ATE_TARGET_SUM, log_normalize
from samsvae_plus.errors import InputError

CONTROL_LABEL = "control"


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    expd = np.exp(shifted)
    return expd / expd.sum(axis=-1, keepdims=True)


def _negative_binomial(rng: np.random.Generator, mean: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """NB counts as a gamma-Poisson mixture; ``theta`` is the inverse dispersion."""
    rate = rng.gamma(shape=theta, scale=mean / theta)
    return rng.poisson(rate)


def _sample_masks(rng, n_perturbations: int, latent_dim: int, density: float) -> np.ndarray:
    mask = rng.random((n_perturbations, latent_dim)) < density
    empty = ~mask.any(axis=1)
    mask[np.flatnonzero(empty), rng.integers(0, latent_dim, size=empty.sum())] = True
    return mask


def _embedding_informed_effects(
    rng: np.random.Generator,
    gene_embedding: np.ndarray,
    latent_dim: int,
    density: float,
    effect_size: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Masks and embeddings that are smooth functions of each gene's embedding ``g_t``.

    ``m_tk = 1`` where ``g_t A_k`` is among the largest ``density`` share of its column
    (and each perturbation keeps its largest entry), and ``e_tk = effect_size * g_t B_k``
    (standardised): two genes with close embeddings act on the same dimensions alike.
    """
    n, d = gene_embedding.shape
    scores = gene_embedding @ rng.normal(size=(d, latent_dim)) / np.sqrt(d)
    threshold = np.quantile(scores, 1 - density, axis=0)
    mask = scores >= threshold
    mask[np.arange(n), scores.argmax(axis=1)] = True
    values = gene_embedding @ rng.normal(size=(d, latent_dim)) / np.sqrt(d)
    embedding = np.where(mask, effect_size * values / values.std(), 0.0)
    return mask, embedding


def _combinations(rng, n_perturbations: int, n_combinations: int) -> list[tuple[int, int]]:
    pairs = list(itertools.combinations(range(n_perturbations), 2))
    if n_combinations > len(pairs):
        raise InputError(
            f"n_combinations={n_combinations} exceeds the {len(pairs)} possible pairs of "
            f"{n_perturbations} perturbations; lower it"
        )
    chosen = rng.choice(len(pairs), size=n_combinations, replace=False)
    return [pairs[i] for i in sorted(chosen)]


def _draw_cells(
    rng: np.random.Generator,
    condition_of_cell: np.ndarray,
    context_means: np.ndarray,
    shifts: np.ndarray,
    weight: np.ndarray,
    offset: np.ndarray,
    theta: np.ndarray,
    library_size_median: float,
    library_size_sd: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contexts, library sizes and counts of cells of the given conditions (-1: control),
    under one ground truth; :func:`simulate` draws all cells at once and
    :func:`simulate_to_h5ad` a chunk at a time."""
    n_cells = len(condition_of_cell)
    n_contexts, latent_dim = context_means.shape
    context_of_cell = rng.integers(0, n_contexts, size=n_cells)
    z = context_means[context_of_cell] + rng.normal(size=(n_cells, latent_dim))
    perturbed = condition_of_cell >= 0
    z[perturbed] += shifts[condition_of_cell[perturbed]]
    library = np.exp(rng.normal(np.log(library_size_median), library_size_sd, size=n_cells))
    rho = _softmax(offset + z @ weight)
    counts = _negative_binomial(rng, library[:, None] * rho, theta)
    # A cell with no counts cannot be registered; redraw the (rare) empty ones.
    while (empty := np.flatnonzero(counts.sum(axis=1) == 0)).size:
        counts[empty] = _negative_binomial(rng, library[empty, None] * rho[empty], theta)
    return context_of_cell, library, counts


def simulate(
    n_perturbations: int = 50,
    n_contexts: int = 3,
    *,
    n_genes: int = 500,
    latent_dim: int = 10,
    mask_density: float = 0.1,
    n_combinations: int = 20,
    cells_per_condition: int = 100,
    n_control_cells: int = 500,
    effect_size: float = 1.5,
    context_scale: float = 1.0,
    program_density: float = 0.3,
    program_scale: float = 0.5,
    library_size_median: float = 2000.0,
    library_size_sd: float = 0.3,
    dispersion_median: float = 5.0,
    ate_cells: int = 400,
    perturbation_embedding_dim: int = 0,
    seed: int = 0,
) -> ad.AnnData:
    """Simulate Perturb-seq counts with known masks, embeddings and ATEs.

    Parameters
    ----------
    n_perturbations
        Number of single-gene perturbations (named ``P000``, ``P001``, ...).
    n_contexts
        Number of contexts (cell types ``ctx0``, ...), each with its own basal mean.
    n_genes
        Number of measured genes (``G0000``, ...).
    latent_dim
        Dimension of the true latent space.
    mask_density
        Probability that a perturbation acts on a latent dimension.
    n_combinations
        Number of two-gene combinations (labelled ``"P003+P017"``).
    cells_per_condition
        Cells per perturbation or combination.
    n_control_cells
        Control cells in total.
    effect_size
        Typical magnitude of an active embedding entry.
    context_scale
        Standard deviation of the context means of the basal state.
    program_density, program_scale
        Sparsity and scale of the latent-to-gene weights.
    library_size_median, library_size_sd
        Median and log-scale standard deviation of the log-normal library sizes.
    dispersion_median
        Median inverse dispersion of the per-gene log-normal ``theta_g``.
    ate_cells
        Monte Carlo cells per context used for the true ATE.
    perturbation_embedding_dim
        If positive, each perturbed gene gets a random embedding ``g_t`` of this size and
        its mask and embedding are functions of it (see :func:`_embedding_informed_effects`),
        so that genes close in the embedding have similar effects. The embedding is stored
        as ``uns['simulation']['perturbation_embedding']``.
    seed
        Seed of every random draw.

    Returns
    -------
    AnnData
        Integer counts in ``X`` (CSR); ``obs['condition']`` (``"control"`` for controls),
        ``obs['cell_type']``; and in ``uns['simulation']`` the ground truth: ``mask`` and
        ``embedding`` (perturbations x latent), ``perturbations``, ``context_means``,
        ``decoder_weight``, ``gene_offset``, ``inverse_dispersion``, ``true_ate``
        (non-control conditions x genes, pooled over contexts), its Monte Carlo standard
        error ``true_ate_se``, and ``true_ate_by_context``.
    """
    if (
        min(n_perturbations, n_contexts, n_genes, latent_dim, cells_per_condition, n_control_cells)
        < 1
    ):
        raise InputError(
            "simulate needs at least one perturbation, context, gene, latent dim and cell"
        )
    rng = np.random.default_rng(seed)
    perturbations = [f"P{t:03d}" for t in range(n_perturbations)]
    genes = [f"G{g:04d}" for g in range(n_genes)]
    contexts = [f"ctx{c}" for c in range(n_contexts)]

    gene_embedding = None
    if perturbation_embedding_dim > 0:
        gene_embedding = rng.normal(size=(n_perturbations, perturbation_embedding_dim))
        mask, embedding = _embedding_informed_effects(
            rng, gene_embedding, latent_dim, mask_density, effect_size
        )
    else:
        mask = _sample_masks(rng, n_perturbations, latent_dim, mask_density)
        magnitude = effect_size * rng.uniform(0.5, 1.5, size=mask.shape)
        embedding = np.where(mask, magnitude * rng.choice([-1.0, 1.0], size=mask.shape), 0.0)
    context_means = rng.normal(0.0, context_scale, size=(n_contexts, latent_dim))
    weight = rng.normal(0.0, program_scale, size=(latent_dim, n_genes))
    weight *= rng.random((latent_dim, n_genes)) < program_density
    offset = rng.normal(0.0, 1.0, size=n_genes)
    theta = np.exp(rng.normal(np.log(dispersion_median), 0.5, size=n_genes))

    pairs = _combinations(rng, n_perturbations, n_combinations)
    conditions = perturbations + [f"{perturbations[a]}+{perturbations[b]}" for a, b in pairs]
    dosage = np.zeros((len(conditions), n_perturbations))
    dosage[np.arange(n_perturbations), np.arange(n_perturbations)] = 1
    for row, (a, b) in enumerate(pairs, start=n_perturbations):
        dosage[row, [a, b]] = 1
    shifts = dosage @ (mask * embedding)  # conditions x latent

    # Cells: controls first, then cells_per_condition of each condition.
    condition_of_cell = np.concatenate(
        [np.full(n_control_cells, -1), np.repeat(np.arange(len(conditions)), cells_per_condition)]
    )
    n_cells = len(condition_of_cell)
    context_of_cell, library, counts = _draw_cells(
        rng,
        condition_of_cell,
        context_means,
        shifts,
        weight,
        offset,
        theta,
        library_size_median,
        library_size_sd,
    )

    ate_by_context, se_by_context = _true_ate(
        rng, context_means, shifts, weight, offset, theta, ate_cells, seed=seed
    )
    labels = np.array([CONTROL_LABEL] + conditions, dtype=object)[condition_of_cell + 1]
    obs = pd.DataFrame(
        {
            "condition": pd.Categorical(labels, categories=[CONTROL_LABEL] + conditions),
            "cell_type": pd.Categorical(np.asarray(contexts)[context_of_cell], categories=contexts),
            "true_library_size": library.astype(np.float32),
        },
        index=[f"cell{i:06d}" for i in range(n_cells)],
    )
    adata = ad.AnnData(
        X=sp.csr_matrix(counts.astype(np.int32)),
        obs=obs,
        var=pd.DataFrame(index=genes),
    )
    adata.uns["simulation"] = {
        "perturbations": np.asarray(perturbations),
        "contexts": np.asarray(contexts),
        "mask": mask.astype(np.int8),
        "embedding": embedding.astype(np.float32),
        "context_means": context_means.astype(np.float32),
        "decoder_weight": weight.astype(np.float32),
        "gene_offset": offset.astype(np.float32),
        "inverse_dispersion": theta.astype(np.float32),
        "true_ate": pd.DataFrame(ate_by_context.mean(axis=0), index=conditions, columns=genes),
        # the truth is itself a Monte Carlo estimate; comparisons must allow for its error
        "true_ate_se": pd.DataFrame(
            np.sqrt((se_by_context**2).sum(axis=0)) / n_contexts, index=conditions, columns=genes
        ),
        "true_ate_by_context": ate_by_context.astype(np.float32),
        **(
            {
                "perturbation_embedding": pd.DataFrame(
                    gene_embedding.astype(np.float32),
                    index=perturbations,
                    columns=[f"g{j}" for j in range(perturbation_embedding_dim)],
                )
            }
            if gene_embedding is not None
            else {}
        ),
        "params": {
            "n_perturbations": n_perturbations,
            "n_contexts": n_contexts,
            "n_genes": n_genes,
            "latent_dim": latent_dim,
            "mask_density": mask_density,
            "n_combinations": n_combinations,
            "cells_per_condition": cells_per_condition,
            "n_control_cells": n_control_cells,
            "effect_size": effect_size,
            "perturbation_embedding_dim": perturbation_embedding_dim,
            "ate_cells": ate_cells,
            "seed": seed,
        },
    }
    return adata


def _true_ate(
    rng: np.random.Generator,
    context_means: np.ndarray,
    shifts: np.ndarray,
    weight: np.ndarray,
    offset: np.ndarray,
    theta: np.ndarray,
    n_cells: int,
    *,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo ATE per context (contexts x conditions x genes), common random numbers,
    and its Monte Carlo standard error (same shape).

    Every condition of a context reuses the same basal states and the same stream of
    gamma/Poisson draws as that context's control, so the difference measures the effect
    rather than sampling noise. The standard error is that of the mean of the per-cell
    (condition - control) differences.
    """
    n_contexts, latent_dim = context_means.shape
    ate = np.empty((n_contexts, len(shifts), weight.shape[1]))
    se = np.empty_like(ate)
    for c in range(n_contexts):
        z = context_means[c] + rng.normal(size=(n_cells, latent_dim))

        def log_expression(shift: np.ndarray, c: int = c, z: np.ndarray = z) -> np.ndarray:
            noise = np.random.default_rng([seed, c])  # the common random numbers
            rho = _softmax(offset + (z + shift) @ weight)
            return log_normalize(_negative_binomial(noise, ATE_TARGET_SUM * rho, theta))

        control = log_expression(np.zeros(latent_dim))
        for k, shift in enumerate(shifts):
            difference = log_expression(shift) - control
            ate[c, k] = difference.mean(axis=0)
            se[c, k] = difference.std(axis=0, ddof=1) / np.sqrt(n_cells) if n_cells > 1 else np.nan
    return ate, se


def simulate_to_h5ad(
    path: str | os.PathLike,
    n_cells: int,
    *,
    chunk_cells: int = 20_000,
    control_fraction: float = 0.1,
    seed: int = 0,
    **parameters,
) -> Path:
    """Simulate a large data set straight to an h5ad file, a chunk of cells at a time.

    The ground truth (masks, embeddings, decoder, dispersions, true ATEs) is that of
    :func:`simulate` with the same ``parameters`` and ``seed``, and is stored the same way in
    ``uns['simulation']``; cells are then drawn ``chunk_cells`` at a time, each with a random
    context and a condition that is the control with probability ``control_fraction`` and
    otherwise uniform over the conditions, and appended to a CSR ``X`` on disk. Memory is
    that of one chunk (dense while drawn), whatever ``n_cells`` is. Rows are in random
    condition order, as in a pooled screen.

    Parameters
    ----------
    path
        The h5ad file to write (replaced if it exists).
    n_cells
        Cells in the file.
    chunk_cells
        Cells drawn and written at a time.
    control_fraction
        Expected share of control cells.
    seed
        Seed of the ground truth and of the cells.
    **parameters
        Keyword arguments of :func:`simulate` other than ``cells_per_condition`` and
        ``n_control_cells`` (e.g. ``n_perturbations``, ``n_genes``, ``library_size_median``).

    Returns
    -------
    Path
        ``path``, readable with ``anndata.read_h5ad(path, backed="r")``.
    """
    import h5py
    from anndata.io import sparse_dataset, write_elem

    if n_cells < 1 or chunk_cells < 1 or not 0 <= control_fraction < 1:
        raise InputError(
            "simulate_to_h5ad needs n_cells >= 1, chunk_cells >= 1 and 0 <= control_fraction < 1"
        )
    # The ground truth of simulate(), with as few cells as it allows.
    truth = simulate(**parameters, cells_per_condition=1, n_control_cells=1, seed=seed)
    uns = truth.uns["simulation"]
    conditions = list(truth.obs["condition"].cat.categories[1:])
    contexts = list(uns["contexts"])
    perturbations = {name: t for t, name in enumerate(uns["perturbations"])}
    dosage = np.zeros((len(conditions), len(perturbations)))
    for row, label in enumerate(conditions):
        dosage[row, [perturbations[g] for g in label.split("+")]] = 1
    effects = uns["mask"].astype(np.float64) * uns["embedding"].astype(np.float64)
    shifts = dosage @ effects
    params = uns["params"]
    library_median = parameters.get("library_size_median", 2000.0)
    library_sd = parameters.get("library_size_sd", 0.3)

    rng = np.random.default_rng([seed, 1])
    path = Path(path)
    condition_codes, context_codes, libraries = [], [], []
    with h5py.File(path, "w") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        matrix = None
        for start in range(0, n_cells, chunk_cells):
            size = min(chunk_cells, n_cells - start)
            control = rng.random(size) < control_fraction
            condition_of_cell = np.where(control, -1, rng.integers(0, len(conditions), size=size))
            context_of_cell, library, counts = _draw_cells(
                rng,
                condition_of_cell,
                uns["context_means"].astype(np.float64),
                shifts,
                uns["decoder_weight"].astype(np.float64),
                uns["gene_offset"].astype(np.float64),
                uns["inverse_dispersion"].astype(np.float64),
                library_median,
                library_sd,
            )
            block = sp.csr_matrix(counts.astype(np.int32))
            block.indptr = block.indptr.astype(np.int64)  # the whole file passes 2**31 non-zeros
            if matrix is None:
                write_elem(f, "X", block)
                matrix = sparse_dataset(f["X"])
            else:
                matrix.append(block)
            condition_codes.append(condition_of_cell + 1)
            context_codes.append(context_of_cell)
            libraries.append(library.astype(np.float32))
        width = len(str(n_cells - 1))
        obs = pd.DataFrame(
            {
                "condition": pd.Categorical.from_codes(
                    np.concatenate(condition_codes), [CONTROL_LABEL] + conditions
                ),
                "cell_type": pd.Categorical.from_codes(np.concatenate(context_codes), contexts),
                "true_library_size": np.concatenate(libraries),
            },
            index=[f"cell{i:0{width}d}" for i in range(n_cells)],
        )
        write_elem(f, "obs", obs)
        write_elem(f, "var", truth.var)
        params = {
            k: v for k, v in params.items() if k not in ("cells_per_condition", "n_control_cells")
        }
        params.update(n_cells=n_cells, control_fraction=control_fraction)
        write_elem(f, "uns", {"simulation": {**uns, "params": params}})
        for key in ("obsm", "varm", "obsp", "varp", "layers"):
            write_elem(f, key, {})
    return path
