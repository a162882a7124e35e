"""``samsvae-plus reproduce``: every table's smoke path end to end, and its errors."""

import contextlib
import io
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import samsvae_plus as sp
from samsvae_plus.cli.main import main
from samsvae_plus.cli.reproduce import EXPERIMENTS, SUPPLEMENTARY

ROOT = Path(__file__).resolve().parents[2]
T1_ROWS = [
    "SAMS-VAE / mean_field",
    "SAMS-VAE / mean_field + expected shift",
    "SAMS-VAE / correlated_basal",
    "SAMS-VAE / correlated_embedding",
    "SAMS-VAE / correlated",
    "SAMS-VAE, Beta-Bernoulli / correlated",
    "CPA-VAE / mean_field",
    "CPA-VAE / correlated_basal",
    "SVAE+ / q(z | x)",
    "conditional VAE / q(z | x, d)",
]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One ``reproduce all --smoke`` run (about a minute on two cores), shared. The real
    data are fetched first, so a missing file fails here with the data module's message
    instead of inside a table's subprocess."""
    for name in ("norman_mcfaline_devel", "papalexi2021_thp1"):
        sp.datasets.fetch(f"perturbseq/{name}.h5ad")
    sp.datasets.fetch("annotations/gene_sets/gobp.csv.gz")
    return tmp_path_factory.mktemp("reproduce")


@pytest.fixture(scope="module")
def summary(smoke):
    """Exit code and stdout of the run (capsys is function-scoped, so stdout is caught here)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["reproduce", "all", "--smoke", "--out", str(smoke)])
    return code, buffer.getvalue()


def _table(out: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(out / name / "table.csv", index_col=0)


def test_reproduce_all_runs_every_table_and_ends_with_their_wall_times(smoke, summary):
    code, text = summary
    assert code == 0
    line = text.strip().splitlines()[-1]
    assert line.startswith("samsvae-plus reproduce: 6 table(s) in ")
    for name in EXPERIMENTS:
        seconds = float(line.split(f"{name} ")[1].split(" s")[0])
        assert 0 < seconds < 300, name


def test_every_table_writes_its_files_with_splits_and_a_run_record(smoke, summary):
    for name in EXPERIMENTS:
        out = smoke / name
        table = _table(smoke, name)
        assert len(table) > 0, name
        assert (out / "table.md").read_text().count("\n") == len(table) + 2, name
        assert list(out.glob("*.png")) and list(out.glob("*.pdf")), name
        record = json.loads((out / "run.json").read_text())
        assert record["smoke"] is True and record["wall_time_s"] > 0, name
        assert record["versions"]["samsvae_plus"] == sp.__version__, name
        assert record["device"] and record["seeds"], name
        splits = json.loads((out / "splits.json").read_text())
        for split in splits:
            train, test = set(split["train"]), set(split["test"])
            assert train and test and not train & test, name


def test_t1_has_every_row_on_every_data_set_with_mean_and_sd(smoke, summary):
    table = _table(smoke, "t1_models_guides")
    for data in ("simulation", "norman", "papalexi"):
        rows = table.loc[[f"{data} / {r}" for r in T1_ROWS]]
        # a log-likelihood bound of counts is negative and finite, and two seeds give an sd
        assert rows["test_iwelbo mean"].between(-1e6, 0).all(), data
        assert (rows["test_iwelbo sd"] >= 0).all(), data
        assert rows["ate_pearson mean"].between(-1, 1).all(), data
        assert rows["ate_pearson_top20 mean"].between(-1, 1).all(), data
    simulation = table.loc[[f"simulation / {r}" for r in T1_ROWS], "mask_f1 mean"]
    assert simulation.iloc[:-1].between(0, 1).all() and math.isnan(simulation.iloc[-1])
    # GO-BP groups 21 of Norman's perturbed genes: every row with masks gets an accuracy
    gobp = table.loc[[f"norman / {r}" for r in T1_ROWS], "pathway_accuracy_gobp mean"]
    assert gobp.iloc[:-1].between(0, 1).all() and math.isnan(gobp.iloc[-1])
    splits = json.loads((smoke / "t1_models_guides" / "splits.json").read_text())
    n = len(splits[0]["train"]) + len(splits[0]["validation"]) + len(splits[0]["test"])
    assert abs(len(splits[0]["test"]) / n - 0.20) < 0.01  # the 64/16/20 split


def test_t2_holds_out_the_same_combinations_at_every_seen_fraction(smoke, summary):
    runs = pd.read_csv(smoke / "t2_heldout_combinations" / "runs.csv")
    reference = runs[(runs["model"] == "SAMS-VAE / correlated") & (runs["seen_fraction"] == 0)]
    assert (reference["relative_iwelbo"] == 0).all()
    assert set(runs["seen_fraction"]) == {0.0, 0.25, 0.5, 0.75}
    # the additive baseline is the simulator's own additive structure: it tracks the truth
    additive = runs[(runs["model"] == "additive baseline") & (runs["data"] == "simulation")]
    assert additive["ate_pearson"].mean() > 0.5
    splits = json.loads((smoke / "t2_heldout_combinations" / "splits.json").read_text())
    for data in ("simulation", "norman"):
        tests = {(s["seed"], tuple(s["test"])) for s in splits if s["data"] == data}
        assert len(tests) == len({seed for seed, _ in tests}), data  # one test set per seed
    norman = [s for s in splits if s["data"] == "norman"]
    # 4 of Norman's 15 combinations, each with both genes perturbed alone
    assert all(len(s["scored_combinations"]) == 4 for s in norman)
    singles = {"KLF1", "MAP2K3", "MAP2K6", "MAPK1", "SLC38A2", "TGFBR2"}
    assert all(set(c.split("+")) <= singles for s in norman for c in s["scored_combinations"])
    table = _table(smoke, "t2_heldout_combinations")
    assert {"ate_pearson mean", "ate_pearson sd", "relative_iwelbo mean"} <= set(table.columns)


def test_t3_scores_combination_test_cells_at_every_kept_fraction(smoke, summary):
    runs = pd.read_csv(smoke / "t3_data_efficiency" / "runs.csv")
    assert set(runs["kept_fraction"]) == {0.25, 0.5, 0.75, 1.0}
    full = runs[(runs["model"] == "SAMS-VAE / correlated") & (runs["kept_fraction"] == 1.0)]
    assert (full["relative_iwelbo"] == 0).all()
    models = runs[runs["model"] != "additive baseline"]
    assert np.isfinite(models["test_iwelbo"]).all() and (models["test_iwelbo"] < 0).all()


def test_t4_t5_and_f1_report_their_methods(smoke, summary):
    t4 = _table(smoke, "t4_unseen_cell_type")
    assert t4.loc["simulation / cell-mean baseline", "avg_score mean"] == 0
    t4_splits = json.loads((smoke / "t4_unseen_cell_type" / "splits.json").read_text())
    assert [s["held_out_context"] for s in t4_splits] == ["ctx0"]
    t5 = _table(smoke, "t5_unseen_perturbations")
    for data in ("simulation", "norman", "papalexi"):
        assert -1 <= t5.loc[f"{data} / mean_of_perturbations", "ate_pearson mean"] <= 1
        assert t5.loc[f"{data} / gene_embedding_prior", "n_held_out mean"] >= 1
    # F1 draws T1's row with the best mean test IWELBO among the rows with sparse masks
    t1 = _table(smoke, "t1_models_guides")
    chosen = json.loads((smoke / "f1_masks_pathways" / "run.json").read_text())["chosen"]
    sparse = [r for r in T1_ROWS if r.startswith(("SAMS-VAE", "SVAE+"))]
    for data in ("norman", "papalexi"):
        scores = t1.loc[[f"{data} / {r}" for r in sparse], "test_iwelbo mean"]
        assert chosen[data]["row"] == scores.idxmax().removeprefix(f"{data} / ")
    assert (smoke / "f1_masks_pathways" / "masks_norman_gobp.png").stat().st_size > 0


def test_unknown_experiment_is_a_one_line_error(capsys):
    assert main(["reproduce", "t9", "--out", "unused"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown experiment 't9'" in err and "t1_models_guides" in err
    assert "model_family" in err  # the supplementary experiments are named too


def test_jobs_below_one_is_a_one_line_error(capsys):
    assert main(["reproduce", "all", "--jobs", "0", "--out", "unused"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--jobs must be at least 1, got 0" in err


def test_missing_experiments_folder_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SAMSVAE_PLUS_EXPERIMENTS", str(tmp_path / "nowhere"))
    assert main(["reproduce", "all", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cannot find the experiments folder" in err


def test_missing_pyyaml_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "yaml", None)  # `import yaml` raises ImportError
    assert main(["reproduce", "t1_models_guides", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "needs PyYAML" in err
    assert "pip install 'samsvae-plus[experiments]'" in err
    assert not (tmp_path / "out").exists()


def test_help_lists_every_experiment(capsys):
    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    text = capsys.readouterr().out
    assert all(name in text for name in [*EXPERIMENTS, *SUPPLEMENTARY])


def test_load_config_merges_smoke_overrides_and_drops_the_full_data_section(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "experiments"))
    sys.modules.pop("_common", None)
    from _common import load_config

    full, small = load_config("t1_models_guides"), load_config("t1_models_guides", smoke=True)
    assert full["version"] == 1 and "full_data" not in full and "smoke" not in full
    assert small["training"]["max_epochs"] < full["training"]["max_epochs"]
    assert small["training"]["lr"] == full["training"]["lr"]  # merged key by key
    assert small["rows"] == full["rows"] and len(full["rows"]) == len(T1_ROWS)
    assert full["split_fractions"] == [0.64, 0.16, 0.20] and len(full["seeds"]) >= 3


def _fake_experiments(tmp_path: Path, scripts: dict[str, str]) -> Path:
    """An experiments folder whose table scripts are the given one-liners (default: ok)."""
    folder = tmp_path / "experiments"
    (folder / "configs").mkdir(parents=True)
    for name in EXPERIMENTS:
        (folder / f"{name}.py").write_text(scripts.get(name, "pass") + "\n")
    return folder


def test_a_failing_table_stops_the_others_at_once(tmp_path, capsys):
    import time

    folder = _fake_experiments(
        tmp_path,
        {
            "t1_models_guides": "import time; time.sleep(60)",
            "t4_unseen_cell_type": "raise SystemExit(3)",
        },
    )
    started = time.perf_counter()
    code = main(
        [
            "reproduce",
            "all",
            "--jobs",
            "2",
            "--experiments",
            str(folder),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2 and time.perf_counter() - started < 30  # T1 did not sleep its minute out
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "t4_unseen_cell_type failed (exit code 3)" in err


def test_f1_starts_only_after_t1_has_finished(tmp_path, capsys):
    # T1 leaves a file when it ends; F1 fails unless the file is already there.
    marker = tmp_path / "t1_done"
    folder = _fake_experiments(
        tmp_path,
        {
            "t1_models_guides": f"import time, pathlib; time.sleep(1); pathlib.Path({str(marker)!r}).touch()",
            "f1_masks_pathways": f"import pathlib; assert pathlib.Path({str(marker)!r}).exists()",
        },
    )
    code = main(
        [
            "reproduce",
            "all",
            "--jobs",
            "6",
            "--experiments",
            str(folder),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0, capsys.readouterr().err


def test_t4_seeds_run_as_jobs_of_their_own_then_one_job_gathers_them(tmp_path, capsys):
    # Each fake T4 process appends its arguments and start/end times to a record.
    record = tmp_path / "t4_calls.jsonl"
    script = (
        "import json, sys, time; start = time.time(); time.sleep(0.5); "
        f"open({str(record)!r}, 'a').write(json.dumps([sys.argv[1:], start, time.time()]) + '\\n')"
    )
    folder = _fake_experiments(tmp_path, {"t4_unseen_cell_type": script})
    (folder / "configs" / "t4_unseen_cell_type.yaml").write_text(
        "version: 1\nseeds: [0, 1, 2]\nsmoke:\n  seeds: [0]\n"
    )
    out = tmp_path / "out"
    command = ["reproduce", "t4_unseen_cell_type", "--experiments", str(folder)]
    assert main([*command, "--jobs", "2", "--out", str(out)]) == 0
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    seed_calls = [c for c in calls if "--rows-only" in c[0]]
    gather = [c for c in calls if "--rows-only" not in c[0]]
    assert sorted(c[0][c[0].index("--seeds") + 1] for c in seed_calls) == ["0", "1", "2"]
    assert len(gather) == 1 and gather[0][0][gather[0][0].index("--seeds") :][:4] == [
        "--seeds",
        "0",
        "1",
        "2",
    ]
    assert gather[0][1] >= max(end for _, _, end in seed_calls)  # after every seed
    assert min(c[2] for c in seed_calls) > sorted(c[1] for c in seed_calls)[1]  # 2 at once
    logs = sorted(p.name for p in (out / "t4_unseen_cell_type").iterdir())
    assert logs == ["log.txt", "log_seed0.txt", "log_seed1.txt", "log_seed2.txt"]
    assert re.search(r"t4_unseen_cell_type \d+ s in 4 jobs", capsys.readouterr().out)
    # the smoke config has one seed: one job
    record.unlink()
    assert main([*command, "--smoke", "--out", str(tmp_path / "smoke")]) == 0
    (call,) = [json.loads(line) for line in record.read_text().splitlines()]
    assert "--rows-only" not in call[0] and "--seeds" not in call[0]


def test_a_supplementary_experiment_runs_the_script_its_config_names(tmp_path, capsys):
    # The fake T1 script records its arguments; model_family's config names T1's script.
    record = tmp_path / "calls.jsonl"
    script = f"import json, sys; open({str(record)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')"
    folder = _fake_experiments(tmp_path, {"t1_models_guides": script})
    (folder / "configs" / "model_family.yaml").write_text(
        "version: 1\nscript: t1_models_guides\nseeds: [0, 1, 2]\n"
    )
    out = tmp_path / "out"
    command = ["reproduce", "model_family", "--experiments", str(folder), "--out", str(out)]
    assert main(command) == 0
    (call,) = [json.loads(line) for line in record.read_text().splitlines()]
    assert call[call.index("--config") + 1] == "model_family"
    assert call[call.index("--out") + 1] == str(out.resolve() / "model_family")
    assert (out / "model_family" / "log.txt").is_file()
    assert "1 table(s)" in capsys.readouterr().out
