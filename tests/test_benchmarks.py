"""Benchmark scripts run end to end on their --smoke paths."""

import json
import runpy
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


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
