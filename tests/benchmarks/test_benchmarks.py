"""Benchmark scripts run end to end on their --smoke paths."""

import json
import runpy
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# The scripts import their shared helpers as a script beside them would.
sys.path.insert(0, str(BENCHMARKS))


def test_train_speed_smoke_times_both_losses_and_checks_they_agree(tmp_path, monkeypatch):
    out = tmp_path / "train_speed.json"
    monkeypatch.setattr(sys, "argv", ["train_speed.py", "--smoke", "--out", str(out)])
    runpy.run_path(str(BENCHMARKS / "train_speed.py"), run_name="__main__")
    record = json.loads(out.read_text())
    assert record["smoke"] is True
    assert record["data"]["cells"] == 220 and record["settings"]["timed_steps"] == 3
    assert set(record["guides"]) == {"mean_field", "correlated_basal", "correlated"}
    for guide, result in record["guides"].items():
        # the same draws give the same loss (float32 sums of ~1e4 nats)
        assert result["loss_relative_difference"] < 1e-5, guide
        for name in ("pyro", "plain"):
            assert len(result["step_s"][name]) == 3
            assert result[name]["cells_per_s"] == 32 * result[name]["steps_per_s"] > 0
        ratio = result["pyro"]["median_step_s"] / result["plain"]["median_step_s"]
        assert abs(result["pyro_over_plain"] - ratio) < 1e-12
    assert record["pyro_over_plain"] == record["guides"]["mean_field"]["pyro_over_plain"]
    assert record["versions"]["pyro"] and record["device"] == "cpu"


def test_ddp_smoke_runs_one_and_two_processes(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["ddp.py", "--smoke"])
    runpy.run_path(str(BENCHMARKS / "ddp.py"), run_name="__main__")
    table = capsys.readouterr().out.strip().splitlines()
    one, two = (line.split() for line in table[1:3])
    assert one[0] == "1" and two[0] == "2"
    assert one[1] == two[1]  # the same global batch gives the same number of steps
    assert abs(float(one[4]) - float(two[4])) < 5  # validation ELBOs within noise
    assert table[-1].startswith("2 processes / 1 process")


def test_scale_smoke_trains_from_a_backed_file_in_a_fresh_process(tmp_path, monkeypatch):
    out = tmp_path / "scale.json"
    monkeypatch.setattr(sys, "argv", ["scale.py", "--smoke", "--out", str(out)])
    runpy.run_path(str(BENCHMARKS / "scale.py"), run_name="__main__")
    record = json.loads(out.read_text())
    assert record["smoke"] is True
    assert record["data"]["cells"] == 3000 and record["data"]["genes"] == 50
    assert record["data"]["nonzeros"] > 3000  # every cell has counts
    assert record["training"]["steps"] == 4 and record["training"]["train_cells"] == 4 * 64
    assert record["training"]["validation_elbo"] < 0
    # the worker's own peak: a fresh interpreter with torch and a tiny file
    assert 0.1 < record["peak_rss_gb"] < 2.0
    loader = record["loader"]
    assert loader["batches"] == 4 and 0 < loader["max_rows_held"] <= loader["row_bound"]
    assert record["loader_batches_per_s"] == loader["batches_per_s"] > 0
    assert record["training_steps_per_s"] == record["step"]["steps_per_s"] > 0
    holds = record["peak_rss_gb"] < 4 and record["loader_over_step_rate"] >= 1
    assert record["criterion_holds"] is holds
    assert record["versions"]["torch"] and record["device"] == "cpu"


def test_loader_speed_smoke_times_every_loader_against_the_step(tmp_path, monkeypatch):
    out = tmp_path / "loader_speed.json"
    monkeypatch.setattr(sys, "argv", ["loader_speed.py", "--smoke", "--out", str(out)])
    runpy.run_path(str(BENCHMARKS / "loader_speed.py"), run_name="__main__")
    record = json.loads(out.read_text())
    assert record["smoke"] is True and record["data"]["cells"] == 2000
    step_rate = record["step"]["steps_per_s"]
    assert record["step"]["timed_steps"] == 2 and step_rate > 0
    for name in ("memory", "backed", "resident"):
        result = record["loaders"][name]
        assert result["batches"] == -(-2000 // 64)  # one full pass at batch 64
        assert abs(result["over_step_rate"] - result["batches_per_s"] / step_rate) < 1e-9
    assert 0 < record["loaders"]["backed"]["max_rows_held"] <= 4 * 32768 + 63
    assert record["loaders"]["resident"]["device_bytes"] > 0 and record["device"] == "cpu"


def test_nb_kernel_smoke_checks_the_fused_kernel_against_two_softplus(tmp_path, monkeypatch):
    out = tmp_path / "nb_kernel.json"
    monkeypatch.setattr(sys, "argv", ["nb_kernel.py", "--smoke", "--out", str(out)])
    runpy.run_path(str(BENCHMARKS / "nb_kernel.py"), run_name="__main__")
    record = json.loads(out.read_text())
    assert record["shape"] == {"particles": 2, "cells": 16, "genes": 30}
    assert record["agreement"]["fused"]["value_relative"] < 1e-6
    # float32 bytes: the fused kernel keeps one particle-sized tensor (a) besides the counts,
    # x + theta (lgamma's input) and theta; two softplus calls keep three
    particles_cells_genes, cells_genes, genes = 2 * 16 * 30 * 4, 16 * 30 * 4, 30 * 4
    saved = record["saved_for_backward_bytes"]
    assert saved["fused"] == particles_cells_genes + 2 * cells_genes + genes
    assert saved["two_softplus"] >= 3 * particles_cells_genes


def test_predict_speed_smoke_samples_in_fresh_processes(tmp_path, monkeypatch):
    out = tmp_path / "predict_speed.json"
    monkeypatch.setattr(sys, "argv", ["predict_speed.py", "--smoke", "--out", str(out)])
    runpy.run_path(str(BENCHMARKS / "predict_speed.py"), run_name="__main__")
    record = json.loads(out.read_text())
    for verb in ("predict", "sample"):
        call = record["calls"][verb]
        assert call["cells_out"] == 2000 and call["cells_per_s"] > 0
        assert call["peak_rss_gb"] >= call["rss_before_gb"] > 0
        # float32 values, int32 columns and row pointers; the dense form at 4 bytes a gene
        nnz = call["output_nonzeros"]
        assert 0 < nnz <= 2000 * 50
        assert abs(call["output_csr_gb"] - (8 * nnz + 4 * 2001) / 1e9) < 1e-12
        assert call["output_dense_gb"] == 2000 * 50 * 4 / 1e9


def test_train_budget_smoke_times_model_train(tmp_path, monkeypatch):
    out = tmp_path / "train_budget.json"
    monkeypatch.setattr(sys, "argv", ["train_budget.py", "--smoke", "--out", str(out)])
    runpy.run_path(str(BENCHMARKS / "train_budget.py"), run_name="__main__")
    record = json.loads(out.read_text())
    assert record["timed_steps"] > 0 and record["device"] == "cpu"
    assert abs(record["steps_per_s"] - record["timed_steps"] / record["timed_s"]) < 1e-9
    minutes = record["paper_steps"] / record["steps_per_s"] / 60
    assert abs(record["paper_budget_minutes"] - minutes) < 1e-9


def test_gpu_table_reads_every_figure_from_the_result_files(tmp_path):
    import gpu_table

    speed = {
        "device": "cuda",
        "gpu": "Test GPU",
        "guides": {
            "mean_field": {
                "pyro": {"steps_per_s": 40.0},
                "plain": {"steps_per_s": 44.0},
                "pyro_over_plain": 1.1,
            }
        },
    }
    (tmp_path / "train_speed_cuda.json").write_text(json.dumps(speed))
    table = dict(gpu_table.rows(tmp_path, "_cuda"))
    assert table["device"] == "Test GPU"
    assert table["train_speed mean_field: steps/s Pyro / plain, ratio"] == "40.00 / 44.00, 1.100"
    assert table["nb_kernel"] == "not run" and table["predict_speed"] == "not run"


def test_transformer_speed_smoke_times_both_encoders_side_by_side(tmp_path, monkeypatch):
    out = tmp_path / "transformer_speed.json"
    monkeypatch.setattr(sys, "argv", ["transformer_speed.py", "--smoke", "--out", str(out)])
    runpy.run_path(str(BENCHMARKS / "transformer_speed.py"), run_name="__main__")
    record = json.loads(out.read_text())
    cpu = record["cpu"]
    assert record["smoke"] is True and cpu["cells"] == 16 and cpu["tokens"] == 8
    assert all(len(times) == 2 for times in cpu["step_s"].values())
    ratio = cpu["median_step_s"]["transformer"] / cpu["median_step_s"]["mlp"]
    assert abs(cpu["transformer_over_mlp"] - ratio) < 1e-12
    assert "gpu_2048_tokens" in record


def test_peak_memory_of_a_worker_is_its_own_not_its_parents():
    import resource
    import subprocess

    import numpy as np

    # This process peaks at least 400 MB above a bare interpreter; a child's ru_maxrss
    # would report this peak, which is why the benchmarks read VmHWM instead.
    ballast = np.ones(400_000_000 // 8)
    parent_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    code = "from _memory import peak_rss_bytes; print(peak_rss_bytes())"
    child = subprocess.run(
        [sys.executable, "-c", code], cwd=BENCHMARKS, capture_output=True, text=True, check=True
    )
    child_peak = int(child.stdout)
    assert 1e6 < child_peak < 150e6 < parent_peak - child_peak
    del ballast


def test_challenge_speed_worker_scores_as_the_library_does(tmp_path):
    import subprocess

    from samsvae_plus.challenge.score import challenge_score
    from samsvae_plus.testing.challenge_cases import CaseSpec, challenge_case

    # cell-eval's worker needs cell-eval; ours runs in a fresh process as the script runs it
    spec = CaseSpec(seed=5, n_perturbations=8, cells=(30, 40), n_control=60, n_genes=150)
    case = challenge_case(spec)
    case["real"].write_h5ad(tmp_path / "real.h5ad")
    case["noisy"].write_h5ad(tmp_path / "pred.h5ad")
    want = challenge_score(case["noisy"], case["real"]).mean
    command = [sys.executable, str(BENCHMARKS / "challenge_speed.py"), "--worker", "ours"]
    done = subprocess.run(
        [*command, "--data", str(tmp_path)], capture_output=True, text=True, check=True
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    for metric, value in figures["means"].items():
        assert value == want[metric], metric
    assert len(figures["warm_all_s"]) == 3 and figures["first_call_s"] > 0
    assert figures["peak_rss_gib"] >= figures["rss_after_load_gib"] > 0
