"""The demo at the package defaults keeps the simulator's quality: what a user sees first
is what ``SAMSVAE(adata).train()`` gives, and it must recover the ground truth."""

import json

import pytest

from samsvae_plus.cli.main import main


@pytest.mark.slow
def test_demo_at_the_defaults_recovers_the_simulators_truth(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mask_f1"] >= 0.85
    assert metrics["ate_pearson"] >= 0.9
