"""``samsvae-plus predict``, and train -> predict -> score with the user's own keys."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pytest

import samsvae_plus as sp
from samsvae_plus.cli import predict as predict_cli
from samsvae_plus.cli.main import main
from samsvae_plus.model.prediction_output import FACTUAL_SOURCES

# Keys other than the simulator's (condition / control) and the challenge's
# (target_gene / non-targeting), so that a default taken anywhere on the path shows.
KEY, CONTROL = "gene", "NT"


def _simulated(path, seed=3):
    """A tiny simulation written to ``path``, labelled in obs[KEY] with controls CONTROL."""
    adata = sp.datasets.simulate(
        n_perturbations=4,
        n_contexts=2,
        n_genes=30,
        latent_dim=3,
        n_combinations=2,
        cells_per_condition=12,
        n_control_cells=30,
        ate_cells=10,
        seed=seed,
    )
    del adata.uns["simulation"]
    labels = adata.obs.pop("condition").astype(str).replace({"control": CONTROL})
    adata.obs[KEY] = labels.astype("category")
    adata.write_h5ad(path)
    return adata


def _train(data, out):
    return main(
        [
            "train",
            "--data",
            str(data),
            "--perturbation-key",
            KEY,
            "--control-label",
            CONTROL,
            "--latent-dim",
            "3",
            "--n-particles",
            "1",
            "--max-epochs",
            "2",
            "--no-progress",
            "--out",
            str(out),
        ]
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("predict_cli")
    adata = _simulated(folder / "data.h5ad")
    assert _train(folder / "data.h5ad", folder / "model") == 0
    return folder, adata


def test_factual_choices_are_the_models():
    # The command lists them without importing torch; they must stay the model's.
    assert predict_cli.FACTUAL == FACTUAL_SOURCES


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--perturbations", "all", "A"], "stands alone"),
        (["--n-draws", "0"], "--n-draws must be a positive integer"),
        (["--batch-size", "-1"], "--batch-size must be a positive integer"),
    ],
)
def test_bad_flags_exit_2_with_one_line_before_loading(tmp_path, capsys, extra, message):
    # --model does not exist: the flags are checked first.
    code = main(
        [
            "predict",
            "--model",
            str(tmp_path / "none"),
            "--controls",
            str(tmp_path / "none.h5ad"),
            "--out",
            str(tmp_path / "p.h5ad"),
            *extra,
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "p.h5ad").exists()


def test_perturbations_file_must_list_labels(tmp_path, capsys):
    empty = tmp_path / "labels.txt"
    empty.write_text("\n  \n")
    args = [
        "predict",
        "--model",
        str(tmp_path / "none"),
        "--controls",
        str(tmp_path / "none.h5ad"),
        "--perturbations-file",
        str(empty),
        "--out",
        str(tmp_path / "p.h5ad"),
    ]
    assert main(args) == 2
    assert "lists no labels" in capsys.readouterr().err
    assert main([*args[:-1], str(tmp_path / "p.txt")]) == 2
    assert "should end in .h5ad" in capsys.readouterr().err


def test_predict_writes_the_training_labels_and_a_summary(trained, tmp_path, capsys):
    folder, adata = trained
    labels = tmp_path / "labels.txt"
    perts = sorted(set(adata.obs[KEY]) - {CONTROL})
    single = [p for p in perts if "+" not in p][:2]
    combination = next(p for p in perts if "+" in p)
    # a combination written in the other gene order comes back as training writes it
    flipped = "+".join(reversed(combination.split("+")))
    labels.write_text(f"{single[0]}\n{flipped}\n")
    out = tmp_path / "pred.h5ad"
    capsys.readouterr()
    code = main(
        [
            "predict",
            "--model",
            str(folder / "model"),
            "--controls",
            str(folder / "data.h5ad"),
            "--perturbations-file",
            str(labels),
            "--n-draws",
            "2",
            "--seed",
            "5",
            "--out",
            str(out),
        ]
    )
    stdout = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert stdout[-1].startswith("samsvae-plus predict:") and str(out) in stdout[-1]
    pred = ad.read_h5ad(out)
    n_controls = int((adata.obs[KEY] == CONTROL).sum())
    assert pred.n_obs == n_controls * 3 * 2 and list(pred.var_names) == list(adata.var_names)
    assert set(pred.obs[KEY]) == {CONTROL, single[0], combination}
    record = pred.uns["samsvae_plus_prediction"]
    assert record["seed"] == 5 and record["n_draws"] == 2
    assert record["perturbation_key"] == KEY and record["control_label"] == CONTROL
    # the control rows keep the observed counts of the control cells (factual outcome)
    controls = adata[adata.obs[KEY] == CONTROL]
    rows = (pred.obs[KEY] == CONTROL).to_numpy()
    observed = np.asarray(controls.X.todense() if hasattr(controls.X, "todense") else controls.X)
    got = np.asarray(pred.X[rows].todense() if hasattr(pred.X, "todense") else pred.X[rows])
    np.testing.assert_array_equal(got, np.concatenate([observed, observed]))


def test_controls_without_control_cells_are_rejected(trained, tmp_path, capsys):
    folder, adata = trained
    perturbed = adata[adata.obs[KEY] != CONTROL].copy()
    perturbed.write_h5ad(tmp_path / "perturbed.h5ad")
    code = main(
        [
            "predict",
            "--model",
            str(folder / "model"),
            "--controls",
            str(tmp_path / "perturbed.h5ad"),
            "--out",
            str(tmp_path / "p.h5ad"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and f"no cells labelled {CONTROL!r}" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "p.h5ad").exists()


@pytest.mark.slow
def test_train_predict_score_with_the_users_keys(tmp_path, capsys):
    """The user's path: simulate -> train -> predict -> score, all with gene / NT, no
    renaming in between."""
    data = tmp_path / "data.h5ad"
    adata = _simulated(data, seed=11)
    assert _train(data, tmp_path / "model") == 0
    pred = tmp_path / "pred.h5ad"
    code = main(
        [
            "predict",
            "--model",
            str(tmp_path / "model"),
            "--controls",
            str(data),
            "--perturbations",
            "all",
            "--out",
            str(pred),
        ]
    )
    assert code == 0
    capsys.readouterr()
    result = tmp_path / "score.json"
    code = main(
        [
            "score",
            "--pred",
            str(pred),
            "--real",
            str(data),
            "--reference",
            str(data),
            "--perturbation-key",
            KEY,
            "--control-label",
            CONTROL,
            "--out",
            str(result),
        ]
    )
    line = capsys.readouterr().out.strip()
    assert code == 0 and "(baseline " in line
    scored = json.loads(result.read_text())
    perturbations = set(adata.obs[KEY]) - {CONTROL}
    assert set(scored["per_perturbation"]) == perturbations
    assert scored["score"] is not None
