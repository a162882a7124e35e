"""Mask recovery after Hungarian matching, on tables worked out by hand."""

import numpy as np
import pytest

from samsvae_plus.evaluate.masks import mask_recovery


def test_permuted_identical_masks_score_one():
    truth = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    learned = truth[:, [2, 0, 1]] * 0.9
    result = mask_recovery(truth, learned)
    assert result.f1 == 1.0 and result.matching == {0: 1, 1: 2, 2: 0}


def test_hand_computed_table():
    truth = np.array([[1, 0], [1, 0], [0, 1], [0, 1]])
    # learned dim 1 matches true dim 0 on rows 0-1; learned dim 0 hits row 2 only, plus a
    # false positive on row 0; learned dim 2 is spare and fires on row 3
    learned = np.array([[0.9, 0.8, 0.0], [0.1, 0.7, 0.0], [0.6, 0.2, 0.0], [0.0, 0.0, 0.9]])
    result = mask_recovery(truth, learned)
    # TP = 2 (dim 0 <- learned 1) + 1 (dim 1 <- learned 0 or 2) = 3; predicted = 5; true = 4
    assert result.precision == pytest.approx(3 / 5)
    assert result.recall == pytest.approx(3 / 4)
    assert result.f1 == pytest.approx(2 * 0.6 * 0.75 / 1.35)


def test_empty_prediction_scores_zero():
    assert mask_recovery(np.eye(3), np.zeros((3, 3))).f1 == 0.0
