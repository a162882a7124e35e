"""ATE posterior-predictive checks: metrics on hand-made draws, data ATEs per context, and
the model's draws against data and the simulator's truth."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sps

import samsvae_plus as sp
from samsvae_plus.data.splits import Split
from samsvae_plus.data.transforms import log_normalize
from samsvae_plus.evaluate.ate import ate_pearson, ate_r2, data_ate
from samsvae_plus.evaluate.ate_check import perturbation_splits, summarise_ate

GRID = np.linspace(-1.0, 1.0, 101)  # its 5% and 95% quantiles are -0.9 and 0.9


def _hand_made():
    genes = ["g1", "g2", "g3", "g4"]
    reference = pd.DataFrame(
        [[0.0, 1.0, 2.0, 3.0], [1.0, 0.0, -1.0, 2.0]], index=["A", "B+C"], columns=genes
    )
    shifts = np.array([[0.0, 0.0, 2.0, 0.0], [0.0, -2.0, 0.0, 0.0]])
    draws = reference.to_numpy()[None] + shifts[None] + GRID[:, None, None]
    return reference, shifts, draws


def test_metrics_and_coverage_on_hand_made_draws():
    reference, shifts, draws = _hand_made()
    check = summarise_ate(reference, draws, splits={"A": "train", "B+C": "test"}, top_n=2)
    ref = reference.to_numpy()
    model = ref + shifts  # the grid has mean 0
    metrics = check.metrics
    assert metrics.loc["all", "pearson"] == pytest.approx(
        np.corrcoef(model.ravel(), ref.ravel())[0, 1]
    )
    expected_r2 = 1 - (shifts**2).sum() / ((ref - ref.mean()) ** 2).sum()
    assert metrics.loc["all", "r2"] == pytest.approx(expected_r2)
    # the two shifted entries fall outside their 90% intervals, the six others inside
    assert metrics.loc["all", "coverage"] == pytest.approx(6 / 8)
    assert metrics.loc["train", "coverage"] == pytest.approx(3 / 4)
    assert metrics.loc["test", "n_perturbations"] == 1
    # top 2 genes by |reference|: A -> g4, g3; B+C -> g4, then g1 (ties keep gene order)
    top_model = np.array([model[0, 3], model[0, 2], model[1, 3], model[1, 0]])
    top_ref = np.array([3.0, 2.0, 2.0, 1.0])
    assert metrics.loc["all", "pearson_top2"] == pytest.approx(
        np.corrcoef(top_model, top_ref)[0, 1]
    )
    # at level 0.5 the interval is +-0.5 around each shifted centre: the same six inside
    calibration = check.calibration.set_index("nominal")["coverage"]
    assert calibration.loc[0.5] == pytest.approx(6 / 8)
    assert check.interval == "credible"
    table = check.table.set_index(["condition", "gene"])
    assert table.loc[("A", "g3"), "model"] == pytest.approx(4.0)
    assert table.loc[("A", "g3"), "lower"] == pytest.approx(3.1)
    assert table.loc[("B+C", "g2"), "split"] == "test"


def test_predictive_draws_are_checked_and_credible_coverage_is_kept_beside():
    reference, shifts, draws = _hand_made()
    wide = reference.to_numpy()[None] + 3 * GRID[:, None, None]  # covers everything
    check = summarise_ate(reference, draws, interval_draws=wide)
    assert check.interval == "predictive"
    assert check.metrics.loc["all", "coverage"] == 1.0
    assert check.metrics.loc["all", "coverage_credible"] == pytest.approx(6 / 8)


def test_pearson_of_a_no_effect_prediction_is_undefined():
    reference = pd.DataFrame(np.arange(12.0).reshape(3, 4) - 5)
    assert np.isnan(ate_pearson(reference * 0.0, reference))


def test_r2_penalises_scale_errors_where_pearson_does_not():
    reference = pd.DataFrame(np.arange(12.0).reshape(3, 4) - 5)
    assert ate_pearson(reference / 2, reference) == pytest.approx(1.0)
    r = reference.to_numpy()
    expected = 1 - ((r / 2) ** 2).sum() / ((r - r.mean()) ** 2).sum()
    assert ate_r2(reference / 2, reference) == pytest.approx(expected)


def test_data_ate_compares_each_condition_with_its_own_context():
    rng = np.random.default_rng(0)
    labels = ["control", "A", "control", "A", "B"] * 4
    contexts = ["c0", "c0", "c1", "c1", "c1"] * 4
    counts = rng.integers(0, 30, size=(20, 6)) + 1
    adata = ad.AnnData(
        X=sps.csr_matrix(counts.astype(np.float32)),
        obs=pd.DataFrame(
            {"condition": labels, "ctx": contexts}, index=[f"c{i}" for i in range(20)]
        ),
    )
    values = log_normalize(counts)
    frame = pd.DataFrame(values).assign(condition=labels, ctx=contexts)
    means = frame.groupby(["ctx", "condition"]).mean()

    def diff(c, t):
        return (means.loc[(c, t)] - means.loc[(c, "control")]).to_numpy()

    by_context = data_ate(adata, "condition", "control", context_key="ctx", by_context=True)
    np.testing.assert_allclose(by_context.loc[("c1", "B")], diff("c1", "B"))
    pooled = data_ate(adata, "condition", "control", context_key="ctx")
    np.testing.assert_allclose(pooled.loc["A"], (diff("c0", "A") + diff("c1", "A")) / 2)
    np.testing.assert_allclose(pooled.loc["B"], diff("c1", "B"))  # B was seen in c1 only
    assert set(pooled.index) == {"A", "B"}


def test_split_of_a_condition_follows_its_cells():
    conditions = np.array(["ctrl", "A", "A", "B", "C", "ctrl"])
    split = Split(
        "custom", 0, train=np.array([0, 1]), validation=np.array([3]), test=np.array([2, 4, 5])
    )
    labels = perturbation_splits(conditions, split)
    assert labels.to_dict() == {"A": "train", "B": "validation", "C": "test", "ctrl": "train"}


# A third of the conditions keeps the model-side tests quick.
CHECKED = ["control", "P000", "P001", "P002", "P003", "P004", "P005", "P006", "P002+P006"]


@pytest.fixture(scope="module")
def data_check(trained_model, small_adata):
    cells = small_adata[small_adata.obs["condition"].isin(CHECKED)].copy()
    return trained_model.check_ate(cells, n_draws=20, seed=0, progress=False)


def test_model_ate_agrees_with_data_and_its_predictive_intervals_are_calibrated(data_check):
    row = data_check.metrics.loc["all"]
    assert row["pearson"] > 0.9 and row["pearson_top20"] > 0.95
    assert data_check.interval == "predictive"
    # the replicated data ATE carries the data's sampling noise, the credible interval not
    assert 0.75 <= row["coverage"] <= 0.98, row
    assert row["coverage_credible"] < row["coverage"] - 0.2
    # every condition was trained on (random split of cells)
    assert set(data_check.per_perturbation["split"]) == {"train"}
    # a wider interval covers more: the calibration curve increases
    assert np.all(np.diff(data_check.calibration["coverage"]) >= 0)


def test_model_ate_against_the_simulators_truth(trained_model, small_adata):
    truth = small_adata.uns["simulation"]
    check = trained_model.check_ate(
        reference=truth["true_ate"].loc[CHECKED[1:]],
        n_draws=10,
        n_cells=truth["params"]["ate_cells"],
    )
    assert check.metrics.loc["all", "pearson"] > 0.9
    assert 0.0 < check.metrics.loc["all", "coverage"] < 1.0


def test_ate_by_context_and_from_encoded_controls(trained_model, small_adata):
    by_context = trained_model.average_treatment_effect(
        ["control", "P001"], n_draws=2, n_cells=50, by_context=True
    )
    assert list(by_context.index.names) == ["context", "condition"]
    assert (by_context.xs("control", level="condition") == 0).all().all()
    prior = trained_model.average_treatment_effect(CHECKED[1:], n_draws=2, n_cells=100, seed=1)
    encoded = trained_model.average_treatment_effect(
        CHECKED[1:], n_draws=2, n_cells=100, seed=1, basal="encoder"
    )
    assert ate_pearson(encoded, prior) > 0.95
    with pytest.raises(sp.InputError, match="basal"):
        trained_model.average_treatment_effect(basal="posterior")


def _oracle(adata):
    """SAMS-VAE holding the simulator's true parameters, with a point-mass posterior."""
    import torch

    truth = adata.uns["simulation"]
    model = sp.SAMSVAE(adata, latent_dim=truth["mask"].shape[1], n_layers=0)
    rows = [list(model.registry.perturbations).index(p) for p in truth["perturbations"]]
    with torch.no_grad():
        likelihood = model.module["model"].likelihood
        likelihood.decoder.net[0].weight.copy_(torch.tensor(truth["decoder_weight"]).T)
        likelihood.decoder.net[0].bias.copy_(torch.tensor(truth["gene_offset"]))
        likelihood.log_inverse_dispersion.copy_(torch.tensor(truth["inverse_dispersion"]).log())
        model.module["model"].basal_loc.copy_(torch.tensor(truth["context_means"]))
        guide = model.module["guide"]
        guide.mask_logits[rows] = torch.where(torch.tensor(truth["mask"]) > 0, 30.0, -30.0)
        guide.embedding_loc[rows] = torch.tensor(truth["embedding"])
        guide.embedding_raw_scale.fill_(-30.0)
    model.library_stats = {"log_mean": [7.6, 7.6], "log_sd": [0.3, 0.3]}
    return model


@pytest.mark.slow
def test_an_oracle_is_calibrated_against_the_monte_carlo_truth(small_adata):
    # With the true parameters, the only error left is the Monte Carlo error of the truth
    # itself. Drawing the model's ATE the way the truth was estimated (same cells per
    # context, common random numbers) makes the intervals allow for it: coverage is near
    # nominal. (With many more cells per draw it would fall far below.)
    truth = small_adata.uns["simulation"]
    check = _oracle(small_adata).check_ate(
        reference=truth["true_ate"].loc[CHECKED[1:6]],
        n_draws=20,
        n_cells=truth["params"]["ate_cells"],
    )
    assert check.metrics.loc["all", "pearson"] > 0.99
    assert 0.8 <= check.metrics.loc["all", "coverage"] <= 0.98
