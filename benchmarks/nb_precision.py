"""Precision of the NB log-probability over extreme counts, means and inverse dispersions.

    python benchmarks/nb_precision.py

Evaluates ``module.distributions.NegativeBinomial.log_prob`` in float64 and float32 on a
grid of counts 0..1e6, means 1e-8..1e6 and inverse dispersions 1e-4..1e6, against a float64
scipy reference, and writes the errors per inverse dispersion to
``benchmarks/results/nb_precision.json``. ``tests/module/test_numerical_stability.py`` uses the
same grid and reference.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from scipy.special import gammaln, xlogy

from samsvae_plus._atomic import atomic_write_text
from samsvae_plus.module.distributions import NegativeBinomial

RESULT = Path(__file__).resolve().parent / "results" / "nb_precision.json"
COUNTS = np.array([0.0, 1.0, 7.0, 1e3, 1e6])
MEANS = np.array([1e-8, 1e-4, 1.0, 1e3, 1e6])
INVERSE_DISPERSIONS = np.array([1e-4, 1e-2, 1.0, 1e2, 1e4, 1e6])


def grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts, means and inverse dispersions of every grid point, as flat arrays."""
    mesh = np.meshgrid(COUNTS, MEANS, INVERSE_DISPERSIONS, indexing="ij")
    return tuple(a.ravel() for a in mesh)


def reference_log_prob(x: np.ndarray, mu: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """NB log-pmf in float64, with log1p for ``theta * log(theta / (theta + mu))``.

    ``scipy.stats.nbinom.logpmf`` forms ``1 - p`` and loses that term when ``mu / theta``
    is tiny (0.0008 nats wrong at mu = 1e-8, theta = 1e6).
    """
    return (
        gammaln(x + theta)
        - gammaln(theta)
        - gammaln(x + 1)
        - theta * np.log1p(mu / theta)
        + xlogy(x, mu)
        - xlogy(x, theta + mu)
    )


def log_prob(x, mu, theta, dtype: torch.dtype) -> np.ndarray:
    distribution = NegativeBinomial(
        torch.tensor(np.log(mu), dtype=dtype), torch.tensor(theta, dtype=dtype)
    )
    return distribution.log_prob(torch.tensor(x, dtype=dtype)).double().numpy()


def main() -> None:
    x, mu, theta = grid()
    reference = reference_log_prob(x, mu, theta)
    rows = []
    for dtype in (torch.float64, torch.float32):
        error = np.abs(log_prob(x, mu, theta, dtype) - reference)
        relative = error / np.maximum(1.0, np.abs(reference))
        for value in INVERSE_DISPERSIONS:
            here = theta == value
            rows.append(
                {
                    "dtype": str(dtype).removeprefix("torch."),
                    "inverse_dispersion": float(value),
                    "max_abs_error_counts_le_1e3": float(error[here & (x <= 1e3)].max()),
                    "max_relative_error_all_counts": float(relative[here].max()),
                }
            )
    atomic_write_text(RESULT, json.dumps({"grid": "5 counts x 5 means", "rows": rows}, indent=1))
    print(f"{'dtype':8} {'theta':>8} {'abs err (x<=1e3)':>17} {'rel err (all x)':>16}")
    for row in rows:
        print(
            f"{row['dtype']:8} {row['inverse_dispersion']:8.0e} "
            f"{row['max_abs_error_counts_le_1e3']:17.2g} {row['max_relative_error_all_counts']:16.2g}"
        )


if __name__ == "__main__":
    main()
