"""The challenge scorer against cell-eval 0.8.x's numbers (committed JSON, no cell-eval here).

The inputs are regenerated from the seeds in the JSON; their checksums are compared first,
so a change of the generator fails with that message rather than with a metric mismatch.
Regenerate the JSON with ``benchmarks/make_challenge_fixtures.py`` (needs cell-eval).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from samsvae_plus.challenge.baseline import cell_mean_baseline
from samsvae_plus.challenge.score import challenge_score
from samsvae_plus.testing import challenge_cases as synthetic

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "challenge" / "cell_eval_vcc.json"
EXPECTED = json.loads(FIXTURE.read_text())
CASES = {case["spec"]["seed"]: case for case in EXPECTED["cases"]}


@cache
def generated(seed: int) -> dict:
    case = CASES[seed]
    return synthetic.case_inputs(synthetic.CaseSpec.from_record(case["spec"]), case["log1p_extra"])


@cache
def scored(seed: int, name: str):
    data = generated(seed)
    with_baseline = CASES[seed]["baseline_mean"] is not None
    reference = data["reference"] if with_baseline else None
    return challenge_score(data[name], data["real"], reference=reference)


PAIRS = [(seed, name) for seed, case in CASES.items() for name in case["predictions"]]


def test_fixture_covers_the_acceptance_cases():
    specs = [case["spec"] for case in CASES.values()]
    assert len(specs) >= 3
    assert any(s["log1p"] for s in specs) and any(not s["log1p"] for s in specs)
    assert any(case["baseline_mean"] is None for case in CASES.values())
    assert any(case["baseline_mean"] is not None for case in CASES.values())
    for spec in specs:
        assert 30 <= spec["n_perturbations"] <= 50
        assert 50 <= spec["cells"][0] <= spec["cells"][1] <= 200
        assert 1000 <= spec["n_genes"] <= 2000
    kinds = {name for case in CASES.values() for name in case["predictions"]}
    assert {"perfect", "noisy", "shuffled", "control"} <= kinds


@pytest.mark.parametrize("seed", sorted(CASES))
def test_generated_inputs_match_fixture_checksums(seed):
    data = generated(seed)
    for name, expected in CASES[seed]["checksums"].items():
        assert synthetic.checksum(data[name]) == expected, (
            f"the synthetic generator no longer reproduces input {name!r} of seed {seed}: "
            "regenerate tests/fixtures/challenge/cell_eval_vcc.json with "
            "benchmarks/make_challenge_fixtures.py"
        )


# numpy picks its exp and log1p kernels when it is imported, by what the CPU offers
# (AVX-512, AVX2 or the x86-64-v2 baseline), and their last bits differ. Turning the wider
# ones off reproduces other machines' numpy on this one, and the inputs must not change.
NARROWER_NUMPY = {
    "without AVX-512": "X86_V4 AVX512_ICL AVX512_SPR",
    "baseline only": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
}
CHECKSUMS_IN_SUBPROCESS = """
import json, sys
from samsvae_plus.testing import challenge_cases as synthetic
try:  # numpy >= 2.3 tells which kernel it took
    from numpy.lib.introspect import opt_func_info
    kernel = opt_func_info("log1p", "float64")["log1p"]["dd"]["current"]
except ImportError:
    kernel = None
checksums = {}
for case in json.load(open(sys.argv[1]))["cases"]:
    spec = synthetic.CaseSpec.from_record(case["spec"])
    inputs = synthetic.case_inputs(spec, case["log1p_extra"])
    checksums[spec.seed] = {name: synthetic.checksum(a) for name, a in inputs.items()}
print(json.dumps({"kernel": kernel, "checksums": checksums}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("limit", sorted(NARROWER_NUMPY))
def test_generated_inputs_do_not_depend_on_the_cpus_simd_kernels(limit):
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": NARROWER_NUMPY[limit]}
    run = subprocess.run(
        [sys.executable, "-c", CHECKSUMS_IN_SUBPROCESS, str(FIXTURE)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(run.stdout)
    # The feature names are x86's; elsewhere the kernels stay as they are.
    if limit == "baseline only" and out["kernel"] is not None and platform.machine() == "x86_64":
        assert out["kernel"].startswith("baseline"), out["kernel"]
    for seed, case in CASES.items():
        assert out["checksums"][str(seed)] == case["checksums"], (seed, limit, out["kernel"])


@pytest.mark.parametrize(("seed", "name"), PAIRS)
def test_per_perturbation_agrees_with_cell_eval(seed, name):
    expected = CASES[seed]["predictions"][name]["per_perturbation"]
    table = scored(seed, name).per_perturbation
    assert sorted(table.index) == sorted(expected)
    for label, want in expected.items():
        got = table.loc[label]
        assert int(got["de_nsig_real"]) == want["de_nsig_real"], label
        assert int(got["de_nsig_pred"]) == want["de_nsig_pred"], label
        assert got["overlap_at_N"] == want["overlap_at_N"], label
        assert got["discrimination_score_l1"] == want["discrimination_score_l1"], label
        assert abs(got["mae"] - want["mae"]) < 1e-6, label


@pytest.mark.parametrize(("seed", "name"), PAIRS)
def test_means_and_score_agree_with_cell_eval(seed, name):
    want = CASES[seed]["predictions"][name]
    result = scored(seed, name)
    for metric, value in want["mean"].items():
        tolerance = 1e-6 if metric == "mae" else 1e-9
        assert abs(result.mean[metric] - value) < tolerance, metric
    if want["score"] is None:
        assert result.score is None
        return
    for metric in ("overlap_at_N", "discrimination_score_l1", "mae", "avg_score"):
        assert abs(result.score[metric] - want["score"][metric]) < 1e-6, metric
    assert result.score["leaderboard_x100"] == pytest.approx(100 * result.score["avg_score"])
    for metric, value in CASES[seed]["baseline_mean"].items():
        assert abs(result.baseline_mean[metric] - value) < 1e-6, metric


def test_reference_and_materialised_baseline_score_identically():
    seed = next(s for s, case in CASES.items() if case["baseline_mean"] is not None)
    data = generated(seed)
    baseline = cell_mean_baseline(data["reference"], data["real"])
    assert baseline.X.dtype == np.float32
    direct = scored(seed, "noisy")
    via_file = challenge_score(data["noisy"], data["real"], baseline=baseline)
    assert via_file.baseline_mean.to_dict() == direct.baseline_mean.to_dict()
    assert via_file.score.to_dict() == direct.score.to_dict()
