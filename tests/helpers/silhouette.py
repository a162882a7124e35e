"""The silhouette score with numpy and scipy, so that tests need no scikit-learn."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist


def silhouette_score(points: np.ndarray, labels) -> float:
    """Mean silhouette of ``points`` (rows) grouped by ``labels``, Euclidean distances.

    For each point, ``a`` is its mean distance to the other points of its group and ``b``
    the smallest mean distance to the points of another group; its silhouette is
    ``(b - a) / max(a, b)``, and 0 for a point alone in its group (scikit-learn's
    definition).
    """
    points = np.asarray(points, dtype=np.float64)
    groups, group_of = np.unique(np.asarray(labels), return_inverse=True)
    if len(groups) < 2:
        raise ValueError("the silhouette needs at least two groups")
    distances = cdist(points, points)
    members = np.eye(len(groups))[group_of]  # points x groups, one-hot
    sizes = members.sum(axis=0)
    sums = distances @ members  # each point's summed distance to each group
    own = np.arange(len(points)), group_of
    # the point itself is at distance 0 from itself, so only the count changes
    a = sums[own] / np.maximum(sizes[group_of] - 1, 1)
    others = sums / sizes
    others[own] = np.inf
    b = others.min(axis=1)
    score = (b - a) / np.maximum(a, b)
    score[sizes[group_of] == 1] = 0.0
    return float(score.mean())
