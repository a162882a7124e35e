"""The evaluation experiments run end to end on their --smoke paths."""

import json
import runpy
import sys
from pathlib import Path

import pandas as pd
import pytest

import samsvae_plus as sp

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _run(script: str, out: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(EXPERIMENTS))  # for their shared _common module
    monkeypatch.setattr(sys, "argv", [script, "--smoke", "--out", str(out)])
    runpy.run_path(str(EXPERIMENTS / script), run_name="__main__")


def test_masks_norman_smoke_writes_its_table_and_figures(tmp_path, monkeypatch):
    try:
        sp.datasets.fetch("perturbseq/norman_mcfaline_devel.h5ad")
        sp.datasets.fetch("annotations/gene_sets/gobp.csv.gz")
    except sp.InputError as err:
        pytest.skip(f"real data not available: {err}")
    _run("masks_norman.py", tmp_path, monkeypatch)
    summary = pd.read_csv(tmp_path / "summary.csv").set_index("collection")
    # no two of Norman's 31 perturbed genes share a CORUM complex; GO-BP groups 21 of them
    assert summary.loc["corum", "n_sets"] == 0
    assert summary.loc["gobp", "knn_n_labelled"] == 21
    assert 0 < summary.loc["gobp", "knn_majority_rate"] < 1
    assert len(pd.read_csv(tmp_path / "masks_seed0.csv", index_col=0)) == 31
    for name in ["table.md", "masks_gobp.png", "masks_corum.png", "enrichment_gobp.png"]:
        assert (tmp_path / name).stat().st_size > 0, name


def test_ate_ppc_simulation_smoke(tmp_path, monkeypatch):
    _run("ate_ppc_simulation.py", tmp_path, monkeypatch)
    results = json.loads((tmp_path / "results.json").read_text())
    iwelbo = results["iwelbo"]
    assert iwelbo["100"]["mean"] > iwelbo["1"]["mean"]
    assert 0 <= results["ate_vs_truth"]["coverage"] <= 1
    assert (tmp_path / "ate_ppc.png").stat().st_size > 0
