"""Train / validation / test splits as data: a name, a seed and index arrays.

A split is saved next to every result (``Split.to_dict`` is JSON), so any number in a
report can be traced back to exactly which cells were trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from samsvae_plus.errors import InputError


@dataclass(frozen=True)
class Split:
    """Row indices of the train, validation and test cells of one data set."""

    name: str
    seed: int
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "seed": self.seed,
            "train": self.train.tolist(),
            "validation": self.validation.tolist(),
            "test": self.test.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Split:
        return cls(
            name=str(data["name"]),
            seed=int(data["seed"]),
            **{k: np.asarray(data[k], dtype=np.int64) for k in ("train", "validation", "test")},
        )


def random_split(
    n_cells: int,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    *,
    seed: int = 0,
) -> Split:
    """Split cells uniformly at random into train / validation / test.

    Parameters
    ----------
    n_cells
        Number of cells.
    fractions
        Train, validation and test fractions; they must sum to 1. The test set gets the
        remainder after rounding, so every cell lands in exactly one part.
    seed
        Seed of the permutation.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise InputError(
            f"split fractions must be three non-negative numbers summing to 1, got {fractions}"
        )
    if fractions[0] == 0 or n_cells < 2:
        raise InputError("the training split is empty; use more cells or a larger train fraction")
    order = np.random.default_rng(seed).permutation(n_cells)
    n_train = max(1, int(round(fractions[0] * n_cells)))
    n_val = int(round(fractions[1] * n_cells))
    if fractions[1] > 0:
        n_val = max(1, min(n_val, n_cells - n_train))
    return Split(
        name="random",
        seed=seed,
        train=np.sort(order[:n_train]),
        validation=np.sort(order[n_train : n_train + n_val]),
        test=np.sort(order[n_train + n_val :]),
    )
