"""Write cell-eval's numbers for the synthetic challenge cases to tests/fixtures/challenge/.

Run with an environment that has cell-eval 0.8.x (it does not need samsvae_plus's own
dependencies; the case generator is loaded from its file):

    python3 -m venv /tmp/ce && /tmp/ce/bin/pip install "cell-eval>=0.8,<0.9"
    /tmp/ce/bin/python benchmarks/make_challenge_fixtures.py

For each case and prediction it runs ``MetricsEvaluator(...).compute(profile="vcc")``,
counts significant genes with ``DENsigCounts``, builds the cell-mean baseline with
``build_base_mean_adata`` (cell counts taken from the real data, as the challenge's
counts file does) and scores with ``score_agg_metrics``. The JSON records a checksum of
every generated input, so a test notices when the generator changes.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import importlib.util
import json
import logging
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "challenge" / "cell_eval_vcc.json"

# (spec arguments, extra predictions as log1p copies of counts ones, with baseline)
CASES = [
    (dict(seed=11, n_perturbations=40, n_genes=1500, n_control=400), [], True),
    (
        dict(seed=12, n_perturbations=30, n_genes=1000, n_control=300, log1p=True, dense=True),
        [],
        True,
    ),
    (dict(seed=13, n_perturbations=50, n_genes=2000, n_control=500), ["noisy"], False),
]


def _load_generator():
    path = ROOT / "samsvae_plus" / "testing" / "challenge_cases.py"
    spec = importlib.util.spec_from_file_location("challenge_cases", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["challenge_cases"] = module
    spec.loader.exec_module(module)
    return module


def _run_vcc(pred, real, outdir):
    import polars as pl
    from cell_eval import MetricsEvaluator
    from cell_eval.metrics import DENsigCounts

    evaluator = MetricsEvaluator(
        adata_pred=pred.copy(),
        adata_real=real.copy(),
        control_pert="non-targeting",
        pert_col="target_gene",
        outdir=outdir,
    )
    results, agg = evaluator.compute(profile="vcc", write_csv=False)
    nsig = DENsigCounts()(evaluator.de_comparison)
    per = {}
    for row in results.iter_rows(named=True):
        label = str(row["perturbation"])
        per[label] = {k: float(v) for k, v in row.items() if k != "perturbation"}
        per[label]["de_nsig_real"] = nsig[label]["real"]
        per[label]["de_nsig_pred"] = nsig[label]["pred"]
    mean_row = agg.filter(pl.col("statistic") == "mean").drop("statistic").row(0, named=True)
    return per, {k: float(v) for k, v in mean_row.items()}, agg


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    import polars as pl
    from cell_eval import build_base_mean_adata, score_agg_metrics

    gen = _load_generator()
    cases = []
    with tempfile.TemporaryDirectory() as outdir:
        for spec_args, log1p_extra, with_baseline in CASES:
            spec = gen.CaseSpec(**spec_args)
            data = gen.case_inputs(spec, log1p_extra)
            real = data["real"]
            record = {
                "spec": dataclasses.asdict(spec),
                "log1p_extra": log1p_extra,
                "checksums": {name: gen.checksum(a) for name, a in data.items()},
                "predictions": {},
                "baseline_mean": None,
            }
            base_agg = None
            if with_baseline:
                counts = (
                    real.obs["target_gene"].astype(str).value_counts().rename_axis("target_gene")
                )
                counts_df = pl.DataFrame(
                    {"target_gene": counts.index.tolist(), "n_cells": counts.values.tolist()}
                )
                baseline = build_base_mean_adata(
                    data["reference"].copy(),
                    counts_df=counts_df,
                    pert_col="target_gene",
                    control_pert="non-targeting",
                )
                _, base_mean, base_agg = _run_vcc(baseline, real, outdir)
                record["baseline_mean"] = base_mean
            for name in [n for n in data if n not in ("real", "reference")]:
                per, mean, agg = _run_vcc(data[name], real, outdir)
                entry = {"per_perturbation": per, "mean": mean, "score": None}
                if base_agg is not None:
                    scored = score_agg_metrics(agg, base_agg)
                    entry["score"] = {
                        r["metric"]: float(r["from_baseline"]) for r in scored.iter_rows(named=True)
                    }
                record["predictions"][name] = entry
                print(f"seed {spec.seed} {name}: {mean}", flush=True)
            cases.append(record)
    payload = {
        "generator": "samsvae_plus/testing/challenge_cases.py",
        "cell_eval_version": importlib.metadata.version("cell-eval"),
        "pdex_version": importlib.metadata.version("pdex"),
        "cases": cases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(cases)} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
