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
