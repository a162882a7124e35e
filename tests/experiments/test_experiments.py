"""The supplementary experiments and T4 run end to end on their --smoke paths, and the
config plumbing that lets one script run several designs."""

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import samsvae_plus as sp
from samsvae_plus.cli.reproduce import EXPERIMENTS, SUPPLEMENTARY

EXPERIMENT_DIR = Path(__file__).resolve().parents[2] / "experiments"


def _run(script: str, out: Path, monkeypatch, *options: str) -> None:
    monkeypatch.syspath_prepend(str(EXPERIMENT_DIR))  # for their shared _common module
    monkeypatch.setattr(sys, "argv", [script, "--smoke", "--out", str(out), *options])
    runpy.run_path(str(EXPERIMENT_DIR / script), run_name="__main__")


def _common(monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENT_DIR))
    sys.modules.pop("_common", None)
    import _common

    return _common


def test_masks_norman_smoke_writes_its_table_and_figures(tmp_path, monkeypatch):
    try:
        sp.datasets.fetch("perturbseq/norman_mcfaline_devel.h5ad")
        sp.datasets.fetch("annotations/gene_sets/gobp.csv.gz")
    except sp.InputError as err:
        pytest.skip(f"real data not available: {err}")
    _run("f1_masks_pathways.py", tmp_path, monkeypatch, "--config", "masks_norman")
    summary = pd.read_csv(tmp_path / "runs.csv").set_index("collection")
    # no two of Norman's 31 perturbed genes share a CORUM complex; GO-BP groups 21 of them
    assert summary.loc["corum", "n_sets"] == 0
    assert summary.loc["gobp", "knn_n_labelled"] == 21
    assert 0 < summary.loc["gobp", "knn_majority_rate"] < 1
    assert len(pd.read_csv(tmp_path / "masks_norman.csv", index_col=0)) == 31
    figures = ["masks_norman_gobp.png", "masks_norman_corum.png", "enrichment_norman_gobp.png"]
    for name in ["table.md", *figures]:
        assert (tmp_path / name).stat().st_size > 0, name
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["chosen"]["norman"]["chosen_by"] == "config model"
    (split,) = json.loads((tmp_path / "splits.json").read_text())
    assert split["name"] == "random"  # train's own split, recorded from the model


def test_ate_ppc_simulation_smoke(tmp_path, monkeypatch):
    _run("ate_ppc_simulation.py", tmp_path, monkeypatch)
    results = json.loads((tmp_path / "results.json").read_text())
    iwelbo = results["iwelbo"]
    assert iwelbo["100"]["mean"] > iwelbo["1"]["mean"]
    assert results["n_members"] == 2
    for check in ("ate_vs_truth", "ate_vs_truth_single_model", "ate_vs_truth_encoder_basal"):
        assert 0 <= results[check]["coverage"] <= 1, check
    assert (tmp_path / "ate_ppc.png").stat().st_size > 0


def _table(out: Path) -> pd.DataFrame:
    table = pd.read_csv(out / "table.csv", index_col=0)
    assert (out / "table.md").read_text().count("\n") == len(table) + 2
    assert json.loads((out / "run.json").read_text())["smoke"] is True
    return table


def test_model_family_smoke_names_every_pair_with_a_finite_iwelbo(tmp_path, monkeypatch):
    _run("t1_models_guides.py", tmp_path, monkeypatch, "--config", "model_family")
    table = _table(tmp_path)
    for pair in [
        "SAMS-VAE / mean_field",
        "SAMS-VAE / correlated_basal",
        "SAMS-VAE / correlated_embedding",
        "SAMS-VAE / correlated",
        "SAMS-VAE, Beta-Bernoulli / correlated",
        "CPA-VAE / mean_field",
        "CPA-VAE / correlated_basal",
        "SVAE+ / q(z | x)",
        "conditional VAE / q(z | x, d)",
    ]:
        # a log-likelihood bound of counts is negative and finite
        assert -1e6 < table.loc[f"simulation / {pair}", "test_iwelbo mean"] < 0, pair
    assert table["mask_f1 mean"].isna().sum() == 1  # only the conditional VAE has no masks
    assert table["ate_pearson mean"].between(-1, 1).all()
    splits = json.loads((tmp_path / "splits.json").read_text())
    n = len(splits[0]["train"]) + len(splits[0]["validation"]) + len(splits[0]["test"])
    assert abs(len(splits[0]["test"]) / n - 0.10) < 0.01  # the 80/10/10 split


def test_heldout_combinations_smoke_scores_model_and_additive_baseline(tmp_path, monkeypatch):
    _run("t2_heldout_combinations.py", tmp_path, monkeypatch, "--config", "heldout_combinations")
    table = _table(tmp_path)
    splits = json.loads((tmp_path / "run.json").read_text())["splits"]
    assert all(s["scored_combinations"] for s in splits)  # the split is saved with the results
    assert {s["name"] for s in splits} == {"held_out_combinations"}
    additive = table.loc["simulation / additive baseline / 0.75"]
    # the additive baseline is built from the simulator's own additive latent shifts; even
    # at the smoke budget it tracks the truth
    assert additive["ate_pearson mean"] > 0.5
    model = table.loc["simulation / SAMS-VAE / correlated / 0.75"]
    for metric in ("ate_pearson", "ate_test_cells_pearson", "ate_seen_pearson"):
        assert -1 <= model[f"{metric} mean"] <= 1, metric
    assert np.isnan(additive["ate_seen_pearson mean"])  # the baseline predicts no seen ones


def test_unseen_perturbations_smoke_compares_priors_and_baseline(tmp_path, monkeypatch):
    _run("t5_unseen_perturbations.py", tmp_path, monkeypatch, "--config", "unseen_perturbations")
    table = _table(tmp_path)
    methods = {"gene_embedding_prior", "normal_prior", "mean_of_perturbations"}
    assert set(table.index) == {f"simulation / {m}" for m in methods}
    assert table["ate_pearson mean"].between(-1, 1).all()


def test_ablation_smoke_has_one_row_per_variant(tmp_path, monkeypatch):
    _run("ablation_mask_recovery.py", tmp_path, monkeypatch)
    table = _table(tmp_path)
    assert list(table.index) == ["full", "no dense start", "x-only encoder", "plain learning rate"]
    assert table["mask_f1"].between(0, 1).all()


def test_unseen_cell_type_smoke_scores_models_and_both_baselines(tmp_path, monkeypatch):
    _run("t4_unseen_cell_type.py", tmp_path, monkeypatch, "--seeds", "0", "1")
    table = pd.read_csv(tmp_path / "table.csv", index_col=0)
    assert (tmp_path / "table.md").read_text().count("\n") == len(table) + 2
    methods = [
        "cell-mean baseline",
        "context-mean shift",
        "SAMS-VAE, transformer",
        "SAMS-VAE, transformer, pretrained",
        "SAMS-VAE, MLP",
    ]
    assert list(table.index) == [f"simulation / {m}" for m in methods]
    assert table["ate_pearson mean"].between(-1, 1).all()
    assert table["ate_pearson_truth mean"].between(-1, 1).all()
    # the cell-mean baseline is what the scores are normalised against
    assert table.loc["simulation / cell-mean baseline", "avg_score mean"] == 0
    assert table["avg_score mean"].between(0, 1).all()
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert set(runs["context"]) == {"ctx0"} and (runs["n_test_cells"] > 0).all()
    # mean and sd over the two seeds, each seed's value its mean over folds (one here)
    mlp = runs[runs["method"] == "SAMS-VAE, MLP"].set_index("seed")["mae"]
    assert sorted(mlp.index) == [0, 1] and mlp[0] != mlp[1]
    row = table.loc["simulation / SAMS-VAE, MLP"]
    assert row["mae mean"] == pytest.approx((mlp[0] + mlp[1]) / 2)
    assert row["mae sd"] == pytest.approx(abs(mlp[0] - mlp[1]) / 2**0.5)
    assert (tmp_path / "avg_score.png").stat().st_size > 0


def test_ate_noise_ceiling_retraces_t1_splits_and_correlates_two_data_ates(tmp_path, monkeypatch):
    from samsvae_plus.data.splits import random_split
    from samsvae_plus.evaluate.ate import data_ate

    _run("ate_noise_ceiling.py", tmp_path, monkeypatch, "--seeds", "0")
    runs = pd.read_csv(tmp_path / "runs.csv").set_index("data")
    split = next(
        s for s in json.loads((tmp_path / "splits.json").read_text()) if s["data"] == "norman"
    )
    # The script's smoke data: T1's smoke subset of Norman (6 cells per condition and cell type)
    adata = sp.datasets.norman_mcfaline_devel()
    keep = adata.obs.groupby(["condition", "cell_type"], observed=True).head(6).index
    adata = adata[keep].copy()
    assert split["test"] == random_split(adata.n_obs, (0.64, 0.16, 0.20), seed=0).test.tolist()
    # Recomputed here: Pearson over every (cell type, condition, gene) both parts share
    parts = [
        data_ate(
            adata[np.sort(split[p])],
            "condition",
            "control",
            context_key="cell_type",
            by_context=True,
        )
        for p in ("train", "test")
    ]
    common = parts[0].index.intersection(parts[1].index)
    a, b = (part.loc[common].to_numpy().ravel() for part in parts)
    assert runs.loc["norman", "n_conditions"] == len(common)
    assert runs.loc["norman", "ate_pearson"] == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-6)


def _script_of(name: str) -> str:
    import yaml

    raw = yaml.safe_load((EXPERIMENT_DIR / "configs" / f"{name}.yaml").read_text())
    return raw.get("script", name)


def test_every_config_is_listed_and_names_a_script_that_exists(monkeypatch):
    common = _common(monkeypatch)
    configs = {path.stem for path in (EXPERIMENT_DIR / "configs").glob("*.yaml")}
    assert configs == set(EXPERIMENTS) | set(SUPPLEMENTARY)
    for name in configs:
        config = common.load_config(name)  # version checked; script, smoke, full_data dropped
        assert "script" not in config and "smoke" not in config, name
        script = _script_of(name)
        assert (EXPERIMENT_DIR / f"{script}.py").is_file(), name
        assert common.load_config(name, smoke=True, script=script)["seeds"], name


def test_a_config_of_another_script_is_a_one_line_error(monkeypatch):
    common = _common(monkeypatch)
    with pytest.raises(
        ValueError,
        match=r"model_family.yaml is a config of t1_models_guides.py, not of t2_heldout_combinations.py",
    ) as err:
        common.load_config("model_family", script="t2_heldout_combinations")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="no config"):
        common.load_config("t9_missing")


def test_t2_split_function_comes_from_its_config(monkeypatch):
    common = _common(monkeypatch)
    sys.modules.pop("t2_heldout_combinations", None)
    import t2_heldout_combinations as t2

    from samsvae_plus.data.splits import held_out_combinations, seen_combinations

    adata = sp.datasets.simulate(n_perturbations=6, n_combinations=8, n_genes=20, seed=3)
    conditions = adata.obs["condition"].to_numpy(dtype=str)
    split_at = t2.make_split(common.load_config("heldout_combinations"))
    split, test, scored = split_at(adata, 0.75, 3)
    expected = held_out_combinations(conditions, fraction=0.25, seed=3)
    assert split.test.tolist() == expected.test.tolist() == test.tolist()
    assert split.train.tolist() == expected.train.tolist()
    assert scored == sorted(set(conditions[expected.test]))
    with pytest.raises(ValueError, match="sees a share 0.75 of the combinations"):
        split_at(adata, 0.5, 3)
    split, _, _ = t2.make_split(common.load_config("t2_heldout_combinations"))(adata, 0.5, 3)
    candidates = t2.predictable(conditions)
    assert (
        split.test.tolist()
        == seen_combinations(
            conditions, 0.5, test_fraction=0.25, candidates=candidates, seed=3
        ).test.tolist()
    )
    with pytest.raises(ValueError, match="unknown split function 'random'"):
        t2.make_split({"split": {"function": "random"}})


def _real_data_or_skip(*names: str) -> None:
    try:
        for name in names:
            sp.datasets.fetch(name)
    except sp.InputError as err:
        pytest.skip(f"real data not available: {err}")


@pytest.mark.slow
def test_real_data_baselines_smoke_scores_every_design_against_its_baseline(tmp_path, monkeypatch):
    _real_data_or_skip("perturbseq/norman_mcfaline_devel.h5ad", "perturbseq/papalexi2021_thp1.h5ad")
    _run("real_data_baselines.py", tmp_path, monkeypatch)
    runs = pd.read_csv(tmp_path / "runs.csv")
    methods = runs.groupby(["part", "data", "controls"])["method"].apply(set)
    assert methods[("combinations", "norman_k562", "shared")] == {
        "SAMS-VAE",
        "SAMS-VAE, observed controls",
        "additive",
    }
    assert methods[("unseen_genes", "papalexi", "independent")] == {
        "SAMS-VAE, gene-embedding prior",
        "SAMS-VAE, gene-embedding prior, observed controls",
        "mean of perturbations",
    }
    assert methods[("unseen_cell_type", "simulation", "shared")] == {
        "SAMS-VAE",
        "context-mean shift",
    }
    combos = runs[runs.part == "combinations"]
    assert combos[["ate_pearson", "ate_pearson_top50"]].notna().all().all()
    assert runs.loc[runs.part == "unseen_cell_type", "avg_score"].notna().all()
    # the held-out combinations are exactly those whose genes were perturbed alone
    splits = json.loads((tmp_path / "splits.json").read_text())
    assert splits[0]["held_out_conditions"] == [
        "KLF1+MAP2K6",
        "KLF1+TGFBR2",
        "MAP2K3+MAP2K6",
        "MAP2K3+SLC38A2",
        "MAPK1+TGFBR2",
    ]
    # the independent targets' controls never trained, and no cell is in two parts
    combination = splits[0]
    assert not set(combination["target_controls"]) & set(combination["train"])
    parts = ["train", "validation", "test", "target_controls"]
    assert sum(len(combination[p]) for p in parts) == len(set().union(*map(combination.get, parts)))
    # a rerun with the same settings reads the rows it kept instead of training again
    (cache,) = (tmp_path / "cache").iterdir()
    assert sorted(p.name for p in cache.iterdir())[0] == "combinations_norman.json"
    before = runs.copy()
    _run("real_data_baselines.py", tmp_path, monkeypatch)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "runs.csv"), before)
    assert json.loads((tmp_path / "run.json").read_text())["row_sets_from_cache"] == 5


@pytest.mark.slow
def test_default_selection_smoke_scores_candidates_on_kept_out_halves(tmp_path, monkeypatch):
    _real_data_or_skip("perturbseq/norman_mcfaline_devel.h5ad")
    _run("default_selection.py", tmp_path, monkeypatch)
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert list(runs.candidate) == ["package defaults", "previous defaults"]
    # the data-only reference does not depend on the candidate
    assert runs.raw_split_half.nunique() == 1
    (split, _) = json.loads((tmp_path / "splits.json").read_text())
    assert not set(split["test"]) & (set(split["train"]) | set(split["validation"]))
