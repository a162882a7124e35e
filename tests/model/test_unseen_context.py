"""The unseen-cell-type task: the held-out-context split and its baselines."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from samsvae_plus.data.splits import held_out_context
from samsvae_plus.errors import InputError
from samsvae_plus.evaluate.ate import data_ate
from samsvae_plus.evaluate.context_shift import context_mean_shift, log_ate, log_normalised


def test_held_out_context_keeps_only_its_controls_for_training():
    conditions = np.array(["control", "A", "B", "control", "A", "B", "control", "A"])
    contexts = np.array(["x", "x", "x", "y", "y", "y", "y", "y"])
    split = held_out_context(conditions, contexts, "y", validation_fraction=0.25, seed=3)
    assert split.test.tolist() == [4, 5, 7]  # the perturbed cells of y
    seen = np.sort(np.concatenate([split.train, split.validation]))
    assert seen.tolist() == [0, 1, 2, 3, 6] and split.validation.size == 1
    with pytest.raises(InputError, match="context 'z' is not among"):
        held_out_context(conditions, contexts, "z")
    with pytest.raises(InputError, match="has no 'control' cells"):
        held_out_context(np.array(["A", "control"]), np.array(["y", "x"]), "y")


def _cells(seed=0):
    """Two training contexts and the held-out context's controls, raw counts."""
    rng = np.random.default_rng(seed)
    obs = pd.DataFrame(
        {
            "condition": ["control"] * 6 + ["A"] * 6 + ["B"] * 3,
            "cell_type": ["x", "y"] * 3 + ["x", "y"] * 3 + ["x"] * 3,
        }
    )
    obs.index = [f"c{i}" for i in range(len(obs))]
    train = ad.AnnData(
        X=sp.csr_matrix(rng.poisson(3.0, size=(15, 5)).astype(np.float32) + 1), obs=obs
    )
    controls = ad.AnnData(
        X=sp.csr_matrix(rng.poisson(3.0, size=(4, 5)).astype(np.float32)),
        obs=pd.DataFrame(index=[f"h{i}" for i in range(4)]),
    )
    return train, controls


def test_log_normalised_and_log_ate_match_the_count_path():
    train, _ = _cells()
    x = train.X.toarray()
    expected = np.log1p(1e4 * x / x.sum(1, keepdims=True))
    np.testing.assert_allclose(log_normalised(train).X.toarray(), expected, rtol=1e-6)
    ate = log_ate(log_normalised(train), "condition", "control")
    # data_ate works on counts in log2: the same numbers times ln 2
    reference = data_ate(train, "condition", "control") * np.log(2)
    np.testing.assert_allclose(ate.loc[reference.index], reference, rtol=1e-5, atol=1e-6)


def test_context_mean_shift_adds_the_mean_per_context_effect():
    train, controls = _cells()
    pred = context_mean_shift(
        train,
        controls,
        ["control", "A", "B"],
        perturbation_key="condition",
        context_key="cell_type",
        control_label="control",
    )
    x = train.X.toarray()
    values = np.log1p(1e4 * x / x.sum(1, keepdims=True))
    c, t = train.obs["condition"].to_numpy(), train.obs["cell_type"].to_numpy()

    def effect(condition, context):
        return values[(c == condition) & (t == context)].mean(0) - values[
            (c == "control") & (t == context)
        ].mean(0)

    shift_a = (effect("A", "x") + effect("A", "y")) / 2  # contexts weighted equally
    shift_b = effect("B", "x")  # B was only seen in x
    h = controls.X.toarray()
    base = np.log1p(1e4 * h / h.sum(1, keepdims=True))
    expected = np.concatenate([base, np.maximum(base + shift_a, 0), np.maximum(base + shift_b, 0)])
    np.testing.assert_allclose(pred.X.toarray(), expected, rtol=1e-5, atol=1e-6)
    assert pred.obs["condition"].tolist() == ["control"] * 4 + ["A"] * 4 + ["B"] * 4
    assert pred.obs["control_cell"].tolist()[4:8] == list(controls.obs_names)
