"""Property-based fuzzing of the Virtual Cell Challenge scorer's input pair.

Fuzzed (pred, real) pairs, with a baseline or a reference now and then: counts or log1p
(float16 log1p included), dense, CSR or CSC, categorical or string labels, ASCII or not,
zero-count cells and unused levels (all accepted), and zero to two injected defects in
either file. Invariant: a clean pair is scored with finite numbers for exactly the real
perturbations; a bad one raises a one-line InputError naming a defect.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.fuzz_scorer_strategies import scorer_cases
from helpers.fuzz_strategies import FUZZ, QUIET_NAMES, SCORER_CONTROL, expect
from helpers.hypothesis_profiles import examples
from hypothesis import given, settings

from samsvae_plus.challenge.score import PER_PERTURBATION_COLUMNS, challenge_score

# At the ci profile's counts every fuzz test takes seconds to minutes.
pytestmark = [QUIET_NAMES, pytest.mark.slow]


@settings(max_examples=examples(500), **FUZZ)
@given(scorer_cases())
def test_scorer_is_clean_or_an_input_error(case):
    result = expect(
        lambda: challenge_score(
            case.pred,
            case.real,
            perturbation_key="target_gene",
            control_label=SCORER_CONTROL,
            **case.options,
        ),
        case.defects,
    )
    if result is None:
        return
    table = result.per_perturbation
    assert sorted(table.index) == sorted(case.perturbations)
    assert list(table.columns) == PER_PERTURBATION_COLUMNS
    assert np.isfinite(table.to_numpy(dtype=float)).all()
    assert ((table["discrimination_score_l1"] > 0) & (table["discrimination_score_l1"] <= 1)).all()
    assert ((table["overlap_at_N"] >= 0) & (table["overlap_at_N"] <= 1)).all()
    assert (table["mae"] >= 0).all()
    assert np.isfinite(result.mean.to_numpy()).all()
    if case.options:
        assert np.isfinite(result.baseline_mean.to_numpy()).all()
        assert np.isfinite(result.score.to_numpy()).all()
        assert 0 <= result.score["avg_score"] <= 1
