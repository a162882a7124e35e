"""Advice about the labels of an obs column, for messages: the labels close to one that is
not there, and labels that name no perturbation.

A message that lists a few labels alphabetically rarely shows the one the user meant, so
:func:`label_hint` offers the close matches (``'ctrl'`` for ``'Ctrl'``), else the labels
most cells carry. Demultiplexing leaves labels such as ``unassigned`` or ``multiplet`` in
many data sets; registered as they are, they become a perturbed "gene", so
:func:`non_perturbation_labels` finds them for a warning.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import pandas as pd

# Labels (compared in lower case, also as one gene of a combination) that demultiplexing
# tools and data sets use for cells without one assigned perturbation.
NON_PERTURBATION = frozenset(
    {"unassigned", "multiplet", "doublet", "negative", "na", "n/a", "nan", "none", "unknown"}
)


def label_hint(label: str, labels: pd.Series, *, most_common: int = 5) -> str:
    """A parenthesis that helps find the intended label among ``labels`` (one per cell).

    Parameters
    ----------
    label
        The label that was asked for and not found.
    labels
        The labels of the cells, as strings.
    most_common
        How many labels to show when none is close.

    Returns
    -------
    str
        ``"(did you mean 'control'?)"`` for close matches (case ignored), else
        ``"(the most common labels: 'A' (120 cells), ...)"``.
    """
    counts = labels.value_counts()
    by_lower = {}
    for name in counts.index:
        by_lower.setdefault(str(name).lower(), str(name))
    close = difflib.get_close_matches(str(label).lower(), list(by_lower), n=3, cutoff=0.6)
    if close:
        return f"(did you mean {_or(by_lower[c] for c in close)}?)"
    # ties in alphabetical order, so that the message does not depend on the row order
    ranked = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))[:most_common]
    shown = ", ".join(f"{str(name)!r} ({cell_count(n)})" for name, n in ranked)
    return f"(the most common labels: {shown})"


def non_perturbation_labels(
    conditions: pd.Series, delimiter: str, control_label: str
) -> dict[str, int]:
    """Condition labels that name no perturbation (``unassigned``, ``multiplet``, ``NA``,
    ...; see :data:`NON_PERTURBATION`), alone or as one part of a combination, with the
    number of cells of each, most cells first."""
    counts = conditions.value_counts()
    found = {
        str(label): int(n)
        for label, n in counts.items()
        if str(label) != control_label
        and any(
            part.strip().lower() in NON_PERTURBATION
            for part in [str(label), *str(label).split(delimiter)]
        )
    }
    return dict(sorted(found.items(), key=lambda item: (-item[1], item[0])))


def cell_count(n: int) -> str:
    """``"1 cell"``, ``"2 cells"``."""
    return f"{n} cell" if n == 1 else f"{n} cells"


def _or(names: Sequence[str] | object) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
