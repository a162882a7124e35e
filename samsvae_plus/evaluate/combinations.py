"""Combination effects against the sum of their parts: the additive baseline and the
non-additive residual."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def _parts(label, delimiter: str):
    """The rows of a combination's single perturbations: ``A+B`` -> ``[A, B]``, and
    ``(context, A+B)`` -> ``[(context, A), (context, B)]``."""
    if isinstance(label, tuple):
        context, condition = label
        return [(context, gene) for gene in condition.split(delimiter)]
    return label.split(delimiter)


def additive_effects(
    singles: pd.DataFrame, combinations: Sequence, *, delimiter: str = "+"
) -> pd.DataFrame:
    """``ATE(A) + ATE(B)`` for each combination ``A+B`` whose parts are rows of ``singles``.

    ``singles`` is an ATE table indexed by condition, or by ``(context, condition)`` (then
    ``combinations`` are such pairs too, and the parts are taken in the same context).
    Combinations with a part missing from ``singles`` are left out.
    """
    rows = {
        label: singles.loc[_parts(label, delimiter)].sum(axis=0)
        for label in combinations
        if all(part in singles.index for part in _parts(label, delimiter))
    }
    table = pd.DataFrame(rows).T
    if isinstance(singles.index, pd.MultiIndex) and len(table):
        table.index = pd.MultiIndex.from_tuples(table.index, names=singles.index.names)
    return table.reindex(columns=singles.columns)


def nonadditive_residual(
    ate: pd.DataFrame, combinations: Sequence, *, delimiter: str = "+"
) -> pd.DataFrame:
    """``ATE(A+B) - ATE(A) - ATE(B)`` from one ATE table holding both the combinations
    and their parts (combinations missing a part are left out)."""
    additive = additive_effects(ate, combinations, delimiter=delimiter)
    return ate.loc[additive.index] - additive
