"""Additive baseline and non-additive residual of combination effects."""

import numpy as np
import pandas as pd

from samsvae_plus.evaluate.combinations import additive_effects, nonadditive_residual


def test_additive_effects_sum_the_parts_per_condition_and_per_context():
    genes = ["g1", "g2"]
    ate = pd.DataFrame([[1.0, 0.0], [0.5, 2.0], [2.0, 3.0]], index=["A", "B", "A+B"], columns=genes)
    np.testing.assert_allclose(additive_effects(ate, ["A+B", "A+C"]).to_numpy(), [[1.5, 2.0]])
    np.testing.assert_allclose(nonadditive_residual(ate, ["A+B"]).to_numpy(), [[0.5, 1.0]])
    index = pd.MultiIndex.from_tuples(
        [("k", "A"), ("k", "B"), ("k", "A+B"), ("u", "A")], names=["context", "condition"]
    )
    by_context = pd.DataFrame([[1, 0], [0, 1], [5, 5], [9, 9]], index=index, columns=genes)
    summed = additive_effects(by_context, [("k", "A+B"), ("u", "A+B")])
    assert list(summed.index) == [("k", "A+B")]  # u has no B: left out
    np.testing.assert_allclose(summed.to_numpy(), [[1, 1]])
