"""``samsvae-plus evaluate``: outputs with the library's numbers, and one-line errors."""

import json

import numpy as np
import pandas as pd
import pytest

from samsvae_plus.cli.main import main
from samsvae_plus.evaluate.ate import data_ate
from samsvae_plus.evaluate.gene_sets import assign_pathways

FAST = ["--n-samples", "5", "--n-draws", "5", "--no-progress"]


@pytest.fixture(scope="module")
def inputs(trained_model, small_adata, tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    trained_model.save(root / "model")
    small_adata.write_h5ad(root / "data.h5ad")
    sets = {"A": ["P000", "P001", "P002"], "B": ["P003", "P004"], "C": ["P010"]}
    (root / "sets.json").write_text(json.dumps(sets))
    return root, sets


def _args(root, out, *extra):
    model, data = str(root / "model"), str(root / "data.h5ad")
    return ["evaluate", "--model", model, "--data", data, "--out", str(out), *FAST, *extra]


def test_evaluate_names_each_step_in_the_log(inputs, tmp_path, caplog):
    import logging

    root, _ = inputs
    with caplog.at_level(logging.INFO):
        assert main(_args(root, tmp_path / "out", "--gene-sets", str(root / "sets.json"))) == 0
    messages = [record.getMessage() for record in caplog.records]
    expected = [
        "estimating the IWELBO of ",
        "checking the model's ATE against the data's (5 posterior draws)",
        "checking the model's ATE against the simulation's true ATE",
        "comparing the masks with the gene sets of sets",
        f"writing metrics, tables and figures to {tmp_path / 'out'}",
    ]
    starts = [next(i for i, m in enumerate(messages) if m.startswith(e)) for e in expected]
    assert starts == sorted(starts), messages


def test_evaluate_writes_the_librarys_numbers(inputs, trained_model, small_adata, capsys):
    root, sets = inputs
    out = root / "out"
    assert main(_args(root, out, "--gene-sets", str(root / "sets.json"))) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("samsvae-plus evaluate:") and "IWELBO" in summary

    metrics = json.loads((out / "metrics.json").read_text())
    test = small_adata[trained_model.split.test].copy()
    assert metrics["n_cells"] == test.n_obs
    assert metrics["iwelbo"]["mean"] == pytest.approx(
        trained_model.iwelbo(test, 5, seed=0, progress=False)
    )
    assert metrics["ate"]["interval"] == "predictive"
    assert metrics["ate_vs_truth"]["metrics"]["all"]["pearson"] > 0.9
    assert metrics["mask_recovery"]["f1"] > 0.8

    ate = pd.read_csv(out / "ate.csv")
    observed = data_ate(test, "condition", "control", context_key="cell_type")
    assert len(ate) == observed.size
    row = ate[(ate["condition"] == "P003") & (ate["gene"] == "G0007")].iloc[0]
    assert row["reference"] == pytest.approx(observed.loc["P003", "G0007"])
    assert row["lower"] <= row["upper"]

    masks = pd.read_csv(out / "masks.csv", index_col=0)
    expected = assign_pathways(masks.index, sets)
    assert masks["pathway_sets"].dropna().to_dict() == expected.dropna().to_dict()
    np.testing.assert_allclose(
        masks.drop(columns="pathway_sets").to_numpy(),
        trained_model.mask_probabilities().to_numpy(),
        rtol=1e-6,
    )
    assert metrics["masks"][0]["collection"] == "sets"
    for name in [
        "ate_scatter",
        "calibration",
        "training",
        "masks",
        "masks_sets",
        "enrichment_sets",
    ]:
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000, name
    assert (out / "enrichment_sets.csv").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--split", "holdout"], "--split 'holdout' is not a split"),
        (["--gene-sets", "no/such/file.json"], "neither a collection"),
        (["--basal", "posterior"], "--basal 'posterior' is not available"),
    ],
)
def test_bad_input_exits_2_with_one_line(inputs, tmp_path, capsys, extra, message):
    root, _ = inputs
    assert main(_args(root, tmp_path / "o", *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_data_that_is_not_the_training_data_is_refused(inputs, small_adata, tmp_path, capsys):
    root, _ = inputs
    small_adata[:50].copy().write_h5ad(tmp_path / "other.h5ad")
    args = _args(root, tmp_path / "o")
    args[args.index("--data") + 1] = str(tmp_path / "other.h5ad")
    assert main(args) == 2
    assert "the model's split covers" in capsys.readouterr().err


def test_a_failing_figure_or_report_keeps_the_metrics(
    inputs, tmp_path, capsys, caplog, monkeypatch
):
    """A figure or optional report that fails is logged and left out; the IWELBO and ATE
    check computed before it are written all the same, and the summary says what is missing."""
    from samsvae_plus import plotting
    from samsvae_plus.evaluate import pathway_report

    def broken(*args, **kwargs):
        raise ValueError("s must be float, but has type object")

    monkeypatch.setattr(plotting, "enrichment", broken)
    monkeypatch.setattr(plotting, "training_curves", broken)
    root, _ = inputs
    (root / "other.json").write_text(json.dumps({"A": ["P000", "P001"]}))
    real_report = pathway_report.mask_pathway_report

    def report_failing_on_other(probabilities, sets, *, collection, **options):
        if collection == "other":
            raise RuntimeError("no such thing")
        return real_report(probabilities, sets, collection=collection, **options)

    monkeypatch.setattr(pathway_report, "mask_pathway_report", report_failing_on_other)
    out = tmp_path / "out"
    gene_sets = ["--gene-sets", str(root / "sets.json"), str(root / "other.json")]
    with caplog.at_level("WARNING"):
        assert main(_args(root, out, *gene_sets, "--n-cells", "20")) == 0

    metrics = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(metrics["iwelbo"]["mean"]) and "all" in metrics["ate"]["metrics"]
    assert [m["collection"] for m in metrics["masks"]] == ["sets"]
    assert metrics["not_written"] == {
        "gene-set report other": "RuntimeError: no such thing",
        "figures/training.png": "ValueError: s must be float, but has type object",
        "figures/enrichment_sets.png": "ValueError: s must be float, but has type object",
    }
    figures = {p.name for p in (out / "figures").iterdir()}
    assert "enrichment_sets.png" not in figures and "training.png" not in figures
    assert {"ate_scatter.png", "calibration.png", "masks.png", "masks_sets.png"} <= figures
    assert (out / "enrichment_sets.csv").exists() and (out / "ate.csv").exists()
    assert not list(tmp_path.glob(".out*"))  # no temporary directory left behind

    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("figures/enrichment_sets.png" in w and "s must be float" in w for w in warnings)
    assert any("gene-set report other" in w and "no such thing" in w for w in warnings)
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("samsvae-plus evaluate:") and "IWELBO" in summary
    assert "not written: gene-set report other, figures/training.png" in summary


@pytest.mark.slow
def test_evaluate_with_corum_and_gobp_on_norman(tmp_path, capsys):
    """The evaluate command of docs/cli.md on real data: no Norman gene shares a CORUM complex, so
    that collection's enrichment is empty, which once crashed the plot and lost the run."""
    import samsvae_plus as sp

    try:
        data = sp.datasets.fetch("perturbseq/norman_mcfaline_devel.h5ad")
        for name in ("corum", "gobp"):
            sp.datasets.fetch(f"annotations/gene_sets/{name}.csv.gz")
    except sp.InputError as err:
        pytest.skip(f"real data not available: {err}")
    model = tmp_path / "model"
    train = ["train", "--data", str(data), "--perturbation-key", "condition"]
    train += ["--control-label", "control", "--context-key", "cell_type", "--out", str(model)]
    train += ["--max-epochs", "2", "--latent-dim", "5", "--n-particles", "1", "--no-progress"]
    assert main(train) == 0
    out = tmp_path / "evaluation"
    evaluate = ["evaluate", "--model", str(model), "--data", str(data), "--split", "test"]
    evaluate += ["--gene-sets", "corum", "gobp", "--out", str(out), "--n-samples", "2"]
    evaluate += ["--n-draws", "2", "--n-cells", "10", "--no-progress"]
    assert main(evaluate) == 0

    metrics = json.loads((out / "metrics.json").read_text())
    assert "not_written" not in metrics
    assert np.isfinite(metrics["iwelbo"]["mean"]) and metrics["n_cells"] > 0
    assert [m["collection"] for m in metrics["masks"]] == ["corum", "gobp"]
    assert metrics["masks"][0]["n_sets"] == 0  # CORUM: nothing to enrich
    for name in ("enrichment_corum", "enrichment_gobp", "masks_corum", "masks_gobp"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 0, name
    assert "samsvae-plus evaluate:" in capsys.readouterr().out
