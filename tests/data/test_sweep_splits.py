"""The sweep splits of the held-out-combination and data-efficiency tables."""

import numpy as np
import pytest

import samsvae_plus as sp
from samsvae_plus.data.splits import data_efficiency, seen_combinations

SINGLES = ["A", "B", "C", "D", "E"]
COMBOS = ["A+B", "A+C", "B+C", "C+D", "D+E", "A+E", "B+D", "F+G"]
CONDITIONS = np.repeat(["control", *SINGLES, *COMBOS], 10)


def _conditions(split, part):
    return set(CONDITIONS[getattr(split, part)])


def test_seen_combinations_fixes_the_test_set_and_nests_the_training_combinations():
    splits = [seen_combinations(CONDITIONS, f, seed=3) for f in (0, 0.25, 0.5, 0.75)]
    test = _conditions(splits[0], "test")
    assert len(test) == 2 and test <= set(COMBOS)  # round(0.25 * 8) test combinations
    seen = []
    for split in splits:
        assert _conditions(split, "test") == test
        trained = _conditions(split, "train") | _conditions(split, "validation")
        assert not trained & test
        seen.append({c for c in trained if "+" in c})
        assert set(SINGLES) | {"control"} <= trained
    assert [len(s) for s in seen] == [0, 2, 4, 6]
    assert seen[0] <= seen[1] <= seen[2] <= seen[3]


def test_seen_combinations_draws_test_combinations_from_candidates_only():
    candidates = ["A+B", "A+C", "B+C"]
    for seed in range(5):
        split = seen_combinations(CONDITIONS, 0.5, candidates=candidates, seed=seed)
        assert _conditions(split, "test") <= set(candidates)
    with pytest.raises(sp.InputError, match="fraction"):
        seen_combinations(CONDITIONS, 1.5)


def test_data_efficiency_keeps_a_nested_share_of_training_combination_cells():
    splits = [data_efficiency(CONDITIONS, f, seed=1) for f in (0.25, 0.5, 0.75, 1.0)]
    is_combo = np.char.find(CONDITIONS.astype(str), "+") >= 0
    kept = [set(s.train[is_combo[s.train]]) for s in splits]
    full = splits[-1]
    for fraction, split, cells in zip((0.25, 0.5, 0.75, 1.0), splits, kept, strict=True):
        assert len(cells) == round(fraction * len(kept[-1]))
        assert cells <= kept[-1]
        np.testing.assert_array_equal(split.test, full.test)  # one test set for the sweep
        single_train = split.train[~is_combo[split.train]]
        np.testing.assert_array_equal(single_train, full.train[~is_combo[full.train]])
    assert kept[0] <= kept[1] <= kept[2]
