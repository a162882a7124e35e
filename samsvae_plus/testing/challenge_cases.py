"""Synthetic Perturb-seq cases for testing and benchmarking the challenge scorer.

A case is drawn from a seed: negative-binomial counts of control cells and of
perturbations, each perturbation shifting a random set of genes and knocking down the gene
it is named after. From the same ground truth it draws the real data, a reference
(training-like) file with other perturbations, and predictions of known quality.

This module imports only numpy, scipy, pandas and anndata, and nothing from the package,
so a separate environment (the one that runs cell-eval to make reference numbers) can
load it straight from its file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

PREDICTION_KINDS = ("perfect", "noisy", "shuffled", "control")


@dataclass(frozen=True)
class CaseSpec:
    """How to draw one case.

    Attributes
    ----------
    seed
        Seed of everything in the case.
    n_perturbations
        Perturbations in the real data (the reference gets as many other ones).
    cells
        Inclusive range of cells per perturbation.
    n_control
        Control cells.
    n_genes
        Genes.
    log1p
        Give real and predictions as normalised log1p floats instead of counts.
    dense
        Store predictions as dense arrays instead of CSR.
    """

    seed: int
    n_perturbations: int = 40
    cells: tuple[int, int] = (50, 200)
    n_control: int = 400
    n_genes: int = 1500
    log1p: bool = False
    dense: bool = False

    @classmethod
    def from_record(cls, record: dict) -> CaseSpec:
        """The spec that ``dataclasses.asdict`` wrote to JSON (which turns ``cells`` into a list)."""
        return cls(**{**record, "cells": tuple(record["cells"])})


# numpy's exp and log1p kernels depend on the CPU (AVX-512, AVX2 or baseline) and differ
# in the last bits, so their float64 results are rounded to a grid far coarser than that:
# the cases are then the same on every machine, as the fixtures' checksums require. A
# difference of a few ulps (about 1e-15 here) crosses a rounding boundary with probability
# about that times 10**decimals: about 1e-11 per log1p value (millions of them) and 1e-6
# per exp value (thousands). float32 log1p at 6 decimals, two float32 ulps of margin, did
# differ between machines.
_EXP_DECIMALS = 9
_LOG1P_DECIMALS = 4


def _world(rng: np.random.Generator, n_genes: int, n_perturbations: int):
    mu = np.round(np.exp(rng.normal(-1.0, 1.6, n_genes)), _EXP_DECIMALS)
    effects = np.zeros((n_perturbations, n_genes))
    for p in range(n_perturbations):
        hit = rng.choice(n_genes, size=rng.integers(20, 120), replace=False)
        effects[p, hit] = rng.normal(0.0, 1.0, hit.size)
    return mu, effects


def _counts(rng: np.random.Generator, mu: np.ndarray, log_effect: np.ndarray, n: int):
    size = rng.lognormal(0.0, 0.35, (n, 1))
    mean = size * mu * np.round(np.exp(log_effect), _EXP_DECIMALS)
    theta = 2.0
    return rng.negative_binomial(theta, theta / (theta + mean)).astype(np.float32)


def _log1p_normalise(X: np.ndarray) -> np.ndarray:
    # Counts are integers, so these float64 sums and the median are exact on any CPU.
    X = np.asarray(X, dtype=np.float64)
    totals = X.sum(axis=1, keepdims=True)
    target = np.median(totals)
    values = np.log1p(X / np.where(totals > 0, totals, 1) * target)
    return np.round(values, _LOG1P_DECIMALS).astype(np.float32)


def _anndata(blocks: list[np.ndarray], labels: list[str], genes, spec: CaseSpec, dense: bool):
    X = np.vstack(blocks)
    if spec.log1p:
        X = _log1p_normalise(X)
    obs = pd.DataFrame(
        {"target_gene": pd.Categorical(labels)},
        index=pd.Index([f"cell{i}" for i in range(len(labels))]),
    )
    return ad.AnnData(
        X=X if dense else sp.csr_matrix(X), obs=obs, var=pd.DataFrame(index=genes.copy())
    )


def challenge_case(spec: CaseSpec) -> dict[str, ad.AnnData]:
    """Draw a case: ``real``, ``reference`` and one prediction per kind.

    Predictions: ``perfect`` (a copy of real), ``noisy`` (fresh cells from perturbed
    effects, other cell counts), ``shuffled`` (fresh cells with the perturbation labels
    permuted) and ``control`` (every perturbation predicted by control-like cells).

    Parameters
    ----------
    spec
        What to draw.

    Returns
    -------
    dict of str to AnnData
    """
    rng = np.random.default_rng(spec.seed)
    genes = pd.Index([f"GENE{j:05d}" for j in range(spec.n_genes)])
    n_total = 2 * spec.n_perturbations
    mu, effects = _world(rng, spec.n_genes, n_total)
    # Most perturbations are named after (and knock down) a gene, so the scorer's
    # target-gene exclusion is exercised; a few carry names that are not genes.
    targets = rng.choice(spec.n_genes, size=n_total, replace=False)
    names = [genes[t] if p % 5 else f"PERT{p:03d}_nontarget" for p, t in enumerate(targets)]
    for p, t in enumerate(targets):
        if p % 5:
            effects[p, t] = -3.0
    zero = np.zeros(spec.n_genes)
    real_perts = list(range(spec.n_perturbations))
    ref_perts = list(range(spec.n_perturbations, n_total))
    sizes = rng.integers(spec.cells[0], spec.cells[1] + 1, size=n_total)

    def draw(perts, effect_of, size_of, label_of, n_control, dense=False):
        blocks = [_counts(rng, mu, zero, n_control)]
        labels = ["non-targeting"] * n_control
        for p in perts:
            blocks.append(_counts(rng, mu, effect_of(p), size_of(p)))
            labels += [label_of(p)] * size_of(p)
        return _anndata(blocks, labels, genes, spec, dense)

    real = draw(
        real_perts, lambda p: effects[p], lambda p: sizes[p], lambda p: names[p], spec.n_control
    )
    reference = draw(
        ref_perts, lambda p: effects[p], lambda p: sizes[p], lambda p: names[p], spec.n_control
    )
    noise = rng.normal(0.0, 0.6, effects.shape) * (rng.random(effects.shape) < 0.05)
    noisy = draw(
        real_perts,
        lambda p: 0.7 * effects[p] + noise[p],
        lambda p: 100,
        lambda p: names[p],
        spec.n_control,
        spec.dense,
    )
    permutation = rng.permutation(spec.n_perturbations)
    shuffled = draw(
        real_perts,
        lambda p: effects[permutation[p]],
        lambda p: sizes[p],
        lambda p: names[p],
        spec.n_control,
        spec.dense,
    )
    control = draw(
        real_perts, lambda p: zero, lambda p: 60, lambda p: names[p], spec.n_control, spec.dense
    )
    perfect = real.copy()
    if spec.dense:
        perfect.X = perfect.X.toarray()
    return {
        "real": real,
        "reference": reference,
        "perfect": perfect,
        "noisy": noisy,
        "shuffled": shuffled,
        "control": control,
    }


def case_inputs(spec: CaseSpec, log1p_extra=()) -> dict[str, ad.AnnData]:
    """``challenge_case(spec)`` plus, for each kind named, a log1p copy ``KIND_log1p``.

    These are the inputs that the cell-eval fixtures record, by name.
    """
    data = challenge_case(spec)
    for kind in log1p_extra:
        data[f"{kind}_log1p"] = as_log1p(data[kind])
    return data


def as_log1p(adata: ad.AnnData) -> ad.AnnData:
    """A copy of a counts AnnData as normalised log1p floats (CSR float32)."""
    X = adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)
    out = adata.copy()
    out.X = sp.csr_matrix(_log1p_normalise(X))
    return out


def checksum(adata: ad.AnnData) -> str:
    """SHA-256 of an AnnData's values, labels and genes (detects generator drift)."""
    digest = hashlib.sha256()
    X = adata.X
    if sp.issparse(X):
        X = X.tocsr()
        for part in (X.data, X.indices, X.indptr):
            digest.update(np.ascontiguousarray(part).tobytes())
    else:
        digest.update(np.ascontiguousarray(X).tobytes())
    digest.update("\n".join(adata.obs["target_gene"].astype(str)).encode())
    digest.update("\n".join(map(str, adata.var_names)).encode())
    return digest.hexdigest()
