"""Hypothesis strategies for the options of the prediction verbs (``predict``,
``sample``, ``average_treatment_effect``) and of ``train``, each drawn good or bad."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from helpers.fuzz_strategies import CONTROL, INT32_MAX, MOSTLY_CLEAN, PATTERNS, nfd, some_of

# The options of the prediction verbs a test may make bad, each with what its message must
# mention. A test draws which options are bad (none, one or two), then each option as good
# or bad, so that a lone bad option is common and must be the one the message names.
REQUEST_PATTERNS = {
    "bad_perturbations": r"perturbations|never saw perturbed|empty gene name|same gene twice",
    "bad_n_draws": r"n_draws must be a positive integer",
    "bad_n_cells": r"n_cells must be a positive integer",
    "bad_batch_size": r"batch_size must be a positive integer",
    "bad_seed": r"seed must be an integer",
    "bad_context": r"context|NFC|non-printable",
    "bad_library_size_option": r"library_size must be",
    "bad_basal": r"basal=",
    "bad_max_epochs": r"max_epochs must be a positive integer",
    "bad_n_particles": r"n_particles must be a positive integer",
    "bad_lr": r"lr must be a positive, finite number",
}
PATTERNS.update(REQUEST_PATTERNS)


def bad_options(*names: str, counts=MOSTLY_CLEAN):
    """Which of the named options to make bad: none, one or two of them."""
    return some_of([f"bad_{name}" for name in names], counts)


@st.composite
def perturbation_option(draw, registry, bad: bool):
    """``perturbations=`` for predict/sample/ATE: a label, a list of labels or None."""
    genes = list(registry.perturbations)
    d = registry.combination_delimiter
    good = [*genes, *(f"{a}{d}{b}" for a in genes for b in genes if a < b), CONTROL]
    if not bad:
        shape = draw(st.sampled_from(["none", "one", "list"]))
        if shape == "none":
            return None
        if shape == "one":
            return draw(st.sampled_from(good))
        return draw(st.lists(st.sampled_from(good), min_size=1, max_size=3))
    wrong = [
        "NOPE",
        f"{genes[0]}{d}NOPE",
        f"{genes[0]}{d}",
        f"{genes[0]}{d}{genes[0]}",
        "",
        *(nfd(g) for g in genes if nfd(g) != g),
        f"{genes[0]}\x00",
        f"{genes[0]}\u200b",
        1.5,
        b"A",
    ]
    shape = draw(st.sampled_from(["empty", "not_iterable", "one", "list"]))
    if shape == "empty":
        return []
    if shape == "not_iterable":
        return draw(st.sampled_from([7, 2.5]))
    if shape == "one":
        return draw(st.sampled_from([w for w in wrong if w is not None]))
    items = draw(st.lists(st.sampled_from(good), max_size=2))
    at = draw(st.integers(0, len(items)))
    return [*items[:at], draw(st.sampled_from([*wrong, None])), *items[at:]]


def count_option(bad: bool, low: int = 1, high: int = 3):
    """A positive-integer option (n_draws, n_cells, batch_size)."""
    if bad:
        return st.sampled_from([0, -1, 1.5, True, "2", None])
    return st.integers(low, high)


def seed_option(bad: bool, *, none_is_valid: bool = False):
    """Seeds; ``train`` takes ``None`` (``sp.settings.seed``, else 0), the posterior verbs
    do not."""
    if bad:
        return st.sampled_from([-1, 2**63, 0.5, "0", *([] if none_is_valid else [None])])
    return st.integers(0, 2**31)


def context_option(registry, bad: bool):
    if bad:
        return st.sampled_from(["never-seen", nfd("Å"), 3, "ctx\x00", "細胞\n"])
    return st.sampled_from([None, *registry.contexts])


def library_size_option(bad: bool):
    """``sample(library_size=...)``: None (drawn per context) or a fixed total count."""
    if bad:
        return st.sampled_from([0.0, -1.0, np.nan, np.inf, "100", 2.0**31, 1e40, True])
    return st.sampled_from([None, 1, 50.0, 1e6, float(INT32_MAX)])
