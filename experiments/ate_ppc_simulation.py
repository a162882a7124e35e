"""Held-out IWELBO and ATE posterior-predictive checks on the demo simulation.

Trains SAMS-VAE with the former demo's settings (10 latent dimensions, 150 epochs) on the
demo's simulation, and a bootstrap ensemble of it (``sp.BootstrapEnsemble.fit``: the same model and settings fitted to
resamples of the training cells, whose pooled draws are the bagged posterior), and
reports:

- the IWELBO of the test cells for S = 1, 10, 100 importance samples (seeded);
- the model ATE against the simulator's true ATE: Pearson, R², and coverage of the 90%
  intervals, whose draws use as many cells per context as the truth did, so that they
  carry the same Monte Carlo error; for the single model's credible intervals (which treat
  its decoder as known) and for the bagged posterior, once with basal states from the
  prior, once encoded from the training data's control cells;
- the bagged posterior against the data ATE of the test cells: coverage of the 90%
  intervals of the replicated data ATE (posterior predictive), with the credible
  intervals beside them.

Settings are in ``configs/ate_ppc_simulation.yaml`` (one seed: the simulation's, the
model's and the ensemble's). ``--model``/``--ensemble`` reuse a model or ensemble saved
by ``--save-model``/``--save-ensemble`` of an earlier run with the same config and seed.

Usage::

    python experiments/ate_ppc_simulation.py [--out figures/ate_ppc_simulation] [--smoke]
        [--model DIR] [--ensemble DIR] [--save-model DIR] [--save-ensemble DIR]
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from _common import table_args  # noqa: E402
from _data import load_dataset  # noqa: E402
from _models import fit  # noqa: E402

import samsvae_plus as sp  # noqa: E402
from samsvae_plus._atomic import atomic_write_text  # noqa: E402

NAME = "ate_ppc_simulation"


def reuse_options(parser) -> None:
    parser.add_argument("--model", default=None, help="reuse a model trained on this simulation")
    parser.add_argument("--ensemble", default=None, help="reuse an ensemble saved by this script")
    parser.add_argument("--save-model", default=None, help="save the trained model here")
    parser.add_argument("--save-ensemble", default=None, help="save the ensemble here")


def trained_model(adata, config: dict, seed: int, model_dir: str | None, device: str):
    if model_dir is not None:
        return sp.SAMSVAE.load(model_dir, adata=adata), 0.0
    return fit(
        adata,
        config["row"],
        latent_dim=config["latent_dim"],
        training=config["training"],
        split=None,
        seed=seed,
        device=device,
    )


def trained_ensemble(model, adata, config: dict, seed: int, ensemble_dir: str | None, device: str):
    if ensemble_dir is not None:
        return sp.BootstrapEnsemble.load(ensemble_dir, adata=adata), 0.0
    start = time.perf_counter()
    ensemble = sp.BootstrapEnsemble.fit(
        model, config["n_members"], seed=seed, **config["training"], device=device, progress=False
    )
    return ensemble, time.perf_counter() - start


def main() -> None:
    args, config = table_args(NAME, __doc__, options=reuse_options)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seed = args.seeds[0]
    n_draws = config["n_draws"]

    adata, truth = load_dataset(config["dataset"], seed)
    model, train_s = trained_model(adata, config, seed, args.model, args.device)
    if args.save_model is not None:
        model.save(args.save_model)
    ensemble, ensemble_s = trained_ensemble(model, adata, config, seed, args.ensemble, args.device)
    if args.save_ensemble is not None:
        ensemble.save(args.save_ensemble)
    test = adata[model.split.test].copy()

    start = time.perf_counter()
    iwelbo = {
        s: model.iwelbo(test, s, seed=seed, per_cell=True, progress=False) for s in (1, 10, 100)
    }
    iwelbo_s = time.perf_counter() - start
    against_truth = dict(
        reference=truth["true_ate"],
        n_draws=n_draws,
        n_cells=int(truth["params"]["ate_cells"]),
        seed=seed,
        progress=False,
    )
    seconds = {}

    def timed(name, check, *args, **kwargs):
        start = time.perf_counter()
        result = check(*args, **kwargs)
        seconds[name] = time.perf_counter() - start
        return result

    vs_truth_single = timed("ate_vs_truth_single_model", model.check_ate, **against_truth)
    vs_truth = timed("ate_vs_truth", ensemble.check_ate, **against_truth)
    vs_truth_encoder = timed(
        "ate_vs_truth_encoder_basal", ensemble.check_ate, basal="encoder", **against_truth
    )
    vs_data = timed(
        "ate_vs_data", ensemble.check_ate, test, n_draws=n_draws, seed=seed, progress=False
    )

    def row(check):
        m = check.metrics.loc["all"]
        return {k: float(v) for k, v in m.items()}

    results = {
        "n_cells": adata.n_obs,
        "n_test_cells": test.n_obs,
        "n_members": len(ensemble),
        "iwelbo": {
            str(s): {
                "mean": float(v.mean()),
                "standard_error": float(v.std(ddof=1) / len(v) ** 0.5),
            }
            for s, v in iwelbo.items()
        },
        "ate_vs_truth_single_model": row(vs_truth_single),
        "ate_vs_truth": row(vs_truth),
        "ate_vs_truth_encoder_basal": row(vs_truth_encoder),
        "ate_vs_test_data": row(vs_data),
        "calibration_truth_single_model": vs_truth_single.calibration.to_dict(orient="list"),
        "calibration_truth": vs_truth.calibration.to_dict(orient="list"),
        "calibration_test_data": vs_data.calibration.to_dict(orient="list"),
        "n_draws": n_draws,
        "seconds": {
            "train": train_s,
            "train_ensemble": ensemble_s,
            "iwelbo_1_10_100": iwelbo_s,
            **seconds,
        },
        "smoke": args.smoke,
        "seed": seed,
        "config": config,
    }
    atomic_write_text(out / "results.json", json.dumps(results, indent=1) + "\n")
    vs_truth.table.to_csv(out / "ate_vs_truth.csv.gz", index=False)

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    sp.pl.ate_scatter(vs_truth.reference, vs_truth.prediction, xlabel="true ATE", ax=axes[0])
    sp.pl.ate_scatter(vs_data.reference, vs_data.prediction, xlabel="test-cell ATE", ax=axes[1])
    sp.pl.calibration(
        vs_truth_single.calibration, label="true ATE, one model, credible", ax=axes[2]
    )
    sp.pl.calibration(vs_truth.calibration, label="true ATE, bagged posterior", ax=axes[2])
    sp.pl.calibration(vs_data.calibration, label="test-cell ATE, predictive", ax=axes[2])
    fig.tight_layout()
    fig.savefig(out / "ate_ppc.png", dpi=120)
    fig.savefig(out / "ate_ppc.pdf")
    atomic_write_text(out / "table.md", _table(results))
    print(_table(results))


def _table(r: dict) -> str:
    iw = r["iwelbo"]
    one, t = r["ate_vs_truth_single_model"], r["ate_vs_truth"]
    d, e = r["ate_vs_test_data"], r["ate_vs_truth_encoder_basal"]
    return f"""| quantity | value |
|---|---|
| test IWELBO, S = 1 / 10 / 100 (nats per cell, ± s.e. over cells) | {iw["1"]["mean"]:.2f} / {iw["10"]["mean"]:.2f} / {iw["100"]["mean"]:.2f} (± {iw["100"]["standard_error"]:.2f}) |
| one model, ATE vs truth: Pearson / true ATEs inside its 90% credible intervals | {one["pearson"]:.3f} / {one["coverage"]:.3f} |
| bagged posterior ({r["n_members"]} bootstrap members), ATE vs truth: Pearson, all genes / top 20 | {t["pearson"]:.3f} / {t["pearson_top20"]:.3f} |
| bagged posterior, ATE vs truth: R², all genes / top 20 | {t["r2"]:.3f} / {t["r2_top20"]:.3f} |
| true ATEs inside the bagged posterior's 90% intervals | {t["coverage"]:.3f} (nominal 0.9) |
| the same, basal states encoded from control cells: Pearson / coverage | {e["pearson"]:.3f} / {e["coverage"]:.3f} |
| bagged posterior, ATE vs test-cell data: Pearson / R² | {d["pearson"]:.3f} / {d["r2"]:.3f} |
| test-cell ATEs inside the 90% predictive / credible intervals | {d["coverage"]:.3f} / {d["coverage_credible"]:.3f} (nominal 0.9) |
| posterior draws (pooled over the members) | {r["n_draws"]} |
"""


if __name__ == "__main__":
    main()
