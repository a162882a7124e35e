"""Finding the latent basis in which perturbation effects are sparse.

The SAMS-VAE likelihood and the isotropic priors of ``z_basal`` and of the embeddings are
unchanged by any rotation of the latent space: only the mask prior, which counts active
coordinates, prefers one basis. That preference is worth a few nats per perturbation
against millions of nats of likelihood, so gradient descent hardly feels it; started from
random masks, SVI settles in a rotated basis where every perturbation uses many
dimensions.

The remedy uses the symmetry directly. Training first runs a dense phase with every mask
pinned to 1 (CPA-VAE, whose embeddings then carry each perturbation's full latent shift).
The embedding means are then rotated by varimax, the classic rotation to the sparsest
loadings, and the rotation is applied to model and guide; masks start on where the
rotated embedding is large. Training then continues on the exact ELBO.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def varimax(
    loadings: np.ndarray, *, normalize: bool = True, max_iter: int = 500, tol: float = 1e-10
) -> np.ndarray:
    """Orthogonal rotation ``R`` maximising the varimax criterion of ``loadings @ R``.

    Parameters
    ----------
    loadings
        Rows x factors (here perturbations x latent dimensions).
    normalize
        Kaiser normalisation: rotate unit-length rows, so that perturbations with large
        effects do not dominate the choice of axes.

    Returns
    -------
    ndarray
        Factors x factors orthogonal matrix.
    """
    phi = np.asarray(loadings, dtype=np.float64)
    if normalize:
        phi = phi / np.maximum(np.linalg.norm(phi, axis=1, keepdims=True), 1e-12)
    n, k = phi.shape
    rotation = np.eye(k)
    criterion = 0.0
    for _ in range(max_iter):
        rotated = phi @ rotation
        gradient = phi.T @ (rotated**3 - rotated @ np.diag((rotated**2).sum(axis=0)) / n)
        u, singular, vt = np.linalg.svd(gradient)
        rotation = u @ vt
        previous, criterion = criterion, singular.sum()
        if previous and criterion < previous * (1 + tol):
            break
    return rotation


@torch.no_grad()
def rotate_to_sparse_basis(pair: nn.ModuleDict, *, threshold: float = 0.3) -> torch.Tensor:
    """Rotate model and guide so the embedding means are varimax-sparse; initialise masks.

    After the rotation a mask starts on where ``|e_tk|`` is at least ``threshold`` times the
    largest entry of its perturbation. Returns the rotation ``Q`` (``z' = Q z``).
    """
    guide = pair["guide"]
    embedding = guide.embedding_means()
    rotation = torch.as_tensor(
        varimax(embedding.cpu().numpy()).T, dtype=embedding.dtype, device=embedding.device
    )
    pair["model"].rotate_latent(rotation)
    guide.rotate_latent(rotation)
    magnitude = guide.embedding_means().abs()
    active = magnitude >= threshold * magnitude.amax(dim=1, keepdim=True)
    guide.pin_masks(False)
    guide.init_masks(active)
    return rotation
