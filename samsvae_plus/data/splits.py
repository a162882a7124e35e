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


def _hold_out(
    name: str,
    held: np.ndarray,
    *,
    validation_fraction: float,
    seed: int,
    excluded: np.ndarray | None = None,
) -> Split:
    """Cells where ``held`` form the test set; the rest, less ``excluded`` cells (in no
    part), is split at random."""
    rest = np.flatnonzero(~held if excluded is None else ~held & ~excluded)
    order = np.random.default_rng(seed).permutation(rest)
    n_val = int(round(validation_fraction * len(rest)))
    return Split(
        name=name,
        seed=seed,
        train=np.sort(order[n_val:]),
        validation=np.sort(order[:n_val]),
        test=np.flatnonzero(held),
    )


def _split_by_condition(
    name: str,
    conditions: np.ndarray,
    held_out: set[str],
    *,
    validation_fraction: float,
    seed: int,
) -> Split:
    """Cells of ``held_out`` conditions form the test set; the rest is split at random."""
    return _hold_out(
        name,
        np.isin(conditions, sorted(held_out)),
        validation_fraction=validation_fraction,
        seed=seed,
    )


def held_out_combinations(
    conditions,
    *,
    fraction: float = 0.25,
    delimiter: str = "+",
    validation_fraction: float = 0.1,
    seed: int = 0,
) -> Split:
    """Hold out a fraction of the combination conditions: their cells are the test set.

    Single perturbations and the remaining combinations are split at random into training
    and validation cells, so every gene of a held-out combination can still be seen alone.
    """
    conditions = np.asarray(conditions, dtype=str)
    combinations = sorted(c for c in np.unique(conditions) if delimiter in c)
    if not combinations:
        raise InputError("there are no combination conditions to hold out")
    rng = np.random.default_rng(seed)
    n_held = max(1, int(round(fraction * len(combinations))))
    held = set(rng.choice(combinations, size=n_held, replace=False).tolist())
    return _split_by_condition(
        "held_out_combinations",
        conditions,
        held,
        validation_fraction=validation_fraction,
        seed=seed,
    )


def _nested_prefix(items: list[str], fraction: float, total: int) -> list[str]:
    """The first ``round(fraction * total)`` of ``items`` (at most all of them): with
    ``items`` in a seeded order that does not depend on ``fraction``, a larger fraction
    keeps a superset, so a sweep over fractions changes one thing at a time."""
    if not 0 <= fraction <= 1:
        raise InputError(f"a fraction must lie in [0, 1], got {fraction}")
    return items[: min(len(items), int(round(fraction * total)))]


def seen_combinations(
    conditions,
    seen_fraction: float,
    *,
    test_fraction: float = 0.25,
    candidates=None,
    delimiter: str = "+",
    validation_fraction: float = 0.1,
    seed: int = 0,
) -> Split:
    """The held-out-combinations sweep: a fixed set of test combinations, and a share
    ``seen_fraction`` of all combinations in training.

    ``round(test_fraction * n)`` of the ``n`` combinations (drawn from ``candidates``,
    for instance those whose genes were all perturbed alone) are the test set for every
    ``seen_fraction`` of one seed. Of the others, the first ``round(seen_fraction * n)``
    in a seeded order are trained on (nested: a larger fraction adds combinations); the
    rest are left out of every part. Single perturbations and controls are split at random
    into training and validation cells.
    """
    conditions = np.asarray(conditions, dtype=str)
    combinations = sorted(c for c in np.unique(conditions) if delimiter in c)
    pool = [c for c in combinations if candidates is None or c in set(candidates)]
    if not pool:
        raise InputError("there are no combination conditions to hold out")
    rng = np.random.default_rng(seed)
    n_test = min(len(pool), max(1, int(round(test_fraction * len(combinations)))))
    test = set(rng.permutation(pool)[:n_test].tolist())
    others = [c for c in rng.permutation(combinations).tolist() if c not in test]
    seen = _nested_prefix(others, seen_fraction, len(combinations))
    return _hold_out(
        "seen_combinations",
        np.isin(conditions, sorted(test)),
        validation_fraction=validation_fraction,
        seed=seed,
        excluded=np.isin(conditions, sorted(set(others) - set(seen))),
    )


def data_efficiency(
    conditions,
    kept_fraction: float,
    *,
    fractions: tuple[float, float, float] = (0.64, 0.16, 0.2),
    delimiter: str = "+",
    seed: int = 0,
) -> Split:
    """A random cell split whose training set keeps only ``kept_fraction`` of its
    combination cells (nested over fractions, as in :func:`seen_combinations`).

    Validation and test cells are those of :func:`random_split` with the same seed for
    every fraction, so that scores across fractions share their test cells.
    """
    conditions = np.asarray(conditions, dtype=str)
    base = random_split(len(conditions), fractions, seed=seed)
    is_combination = np.char.find(conditions, delimiter) >= 0
    combination_cells = base.train[is_combination[base.train]]
    order = np.random.default_rng(seed).permutation(combination_cells).tolist()
    kept = _nested_prefix(order, kept_fraction, len(order))
    train = np.sort(np.concatenate([base.train[~is_combination[base.train]], kept]))
    return Split("data_efficiency", seed, train.astype(np.int64), base.validation, base.test)


def held_out_perturbations(
    conditions,
    *,
    fraction: float = 0.2,
    control_label: str = "control",
    delimiter: str = "+",
    candidates=None,
    validation_fraction: float = 0.1,
    seed: int = 0,
) -> Split:
    """Hold out a fraction of single-gene perturbations: every cell that carries one of their
    genes (alone or in a combination) is a test cell, so the model never sees them perturbed.

    Parameters
    ----------
    candidates
        Genes eligible to be held out (for instance those with a gene embedding); by default
        all perturbed genes.
    """
    conditions = np.asarray(conditions, dtype=str)
    labels = [c for c in np.unique(conditions) if c != control_label]
    genes = sorted({g for c in labels for g in c.split(delimiter)})
    pool = sorted(set(genes) & set(candidates)) if candidates is not None else genes
    if not pool:
        raise InputError("no perturbed gene is eligible to be held out")
    rng = np.random.default_rng(seed)
    held_genes = set(
        rng.choice(pool, size=max(1, int(round(fraction * len(pool)))), replace=False).tolist()
    )
    held = {c for c in labels if held_genes & set(c.split(delimiter))}
    return _split_by_condition(
        "held_out_perturbations",
        conditions,
        held,
        validation_fraction=validation_fraction,
        seed=seed,
    )


def bootstrap_split(split: Split, groups, *, seed: int = 0) -> Split:
    """A bootstrap resample of ``split``'s training cells, drawn within groups.

    Each group's training cells (``groups`` labels every cell of the data the split
    indexes, e.g. its context and condition) are drawn with replacement, as many as the
    group had, so every group keeps its size and no condition drops out of training. The
    training indices repeat, which the loaders take as weights; validation and test cells
    are kept as they are, so early stopping still scores cells the model never trained on.
    """
    groups = np.asarray(groups)
    rng = np.random.default_rng(seed)
    train = np.asarray(split.train)
    labels = groups[train]
    resampled = [
        rng.choice(train[labels == label], size=int((labels == label).sum()), replace=True)
        for label in np.unique(labels)
    ]
    return Split(
        name=f"{split.name}+bootstrap",
        seed=seed,
        train=np.sort(np.concatenate(resampled)),
        validation=np.asarray(split.validation),
        test=np.asarray(split.test),
    )


def held_out_context(
    conditions,
    contexts,
    context: str,
    *,
    control_label: str = "control",
    validation_fraction: float = 0.1,
    seed: int = 0,
) -> Split:
    """Hold out the perturbed cells of one context (cell type): the unseen-cell-type task.

    The test set is every perturbed cell of ``context``. Training and validation cells (a
    random split) are all cells of the other contexts plus the *control* cells of
    ``context``: a model sees the new cell type unperturbed only, and must predict its
    perturbations from what the perturbations did in the other contexts.

    Parameters
    ----------
    conditions, contexts
        Condition and context label of every cell.
    context
        The context to hold out.
    """
    conditions = np.asarray(conditions, dtype=str)
    contexts = np.asarray(contexts, dtype=str)
    if context not in set(contexts):
        raise InputError(
            f"context {context!r} is not among the data's contexts {sorted(set(contexts))}"
        )
    held = (contexts == context) & (conditions != control_label)
    if not held.any():
        raise InputError(f"context {context!r} has no perturbed cells to hold out")
    if not ((contexts == context) & ~held).any():
        raise InputError(
            f"context {context!r} has no {control_label!r} cells; the task encodes them to "
            "predict its perturbations"
        )
    return _hold_out("held_out_context", held, validation_fraction=validation_fraction, seed=seed)
