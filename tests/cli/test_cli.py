"""The command line: bad input exits 2 with one line and no output; demo and simulate run."""

import json
import subprocess
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from samsvae_plus.cli.main import main


@pytest.fixture(scope="module")
def good_h5ad(tmp_path_factory):
    import samsvae_plus as sp

    adata = sp.datasets.simulate(
        n_perturbations=5,
        n_contexts=2,
        n_genes=40,
        latent_dim=3,
        n_combinations=2,
        cells_per_condition=15,
        n_control_cells=30,
        ate_cells=10,
        seed=3,
    )
    del adata.uns["simulation"]
    path = tmp_path_factory.mktemp("data") / "good.h5ad"
    adata.write_h5ad(path)
    return path


def _variant(good_h5ad, tmp_path, change):
    adata = ad.read_h5ad(good_h5ad)
    adata.X = adata.X.astype(np.float32)
    change(adata)
    path = tmp_path / "bad.h5ad"
    adata.write_h5ad(path)
    return path


def _set(value):
    def change(adata):
        adata.X.data[0] = value

    return change


def _zero_cell(adata):
    counts = adata.X.tolil()
    counts[0, :] = 0
    adata.X = counts.tocsr()


def _no_control(adata):
    adata.obs["condition"] = adata.obs["condition"].cat.rename_categories({"control": "c"})


def _unused_category(adata):
    adata.obs["condition"] = adata.obs["condition"].cat.add_categories(["X"])


def _empty_label(adata):
    labels = adata.obs["condition"].astype(str).to_numpy()
    labels[0] = ""
    adata.obs["condition"] = pd.Categorical(labels)


def _duplicate_genes(adata):
    adata.var_names = [adata.var_names[1], *adata.var_names[1:]]


BAD = {
    "non-integer": (_set(0.5), "non-integer"),
    "negative": (_set(-1), "negative"),
    "nan": (_set(np.nan), "NaN"),
    "inf": (_set(np.inf), "infinite"),
    "missing control": (_no_control, "control label"),
    "unused category": (_unused_category, "unused"),
    "empty label": (_empty_label, "empty"),
    "duplicate genes": (_duplicate_genes, "not unique"),
    "zero-count cell": (_zero_cell, "zero counts"),
}


def _train_args(data, out, key="condition"):
    return [
        "train",
        "--data",
        str(data),
        "--perturbation-key",
        key,
        "--control-label",
        "control",
        "--out",
        str(out),
        "--max-epochs",
        "1",
        "--no-progress",
    ]


@pytest.mark.parametrize("name", list(BAD))
def test_train_rejects_bad_input_with_exit_2_and_no_output(good_h5ad, tmp_path, capsys, name):
    change, pattern = BAD[name]
    data = _variant(good_h5ad, tmp_path, change)
    out = tmp_path / "out"
    assert main(_train_args(data, out)) == 2
    err = capsys.readouterr().err.strip()
    assert pattern in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_train_rejects_missing_key_and_missing_file(good_h5ad, tmp_path, capsys):
    assert main(_train_args(good_h5ad, tmp_path / "o", key="guide")) == 2
    assert main(_train_args(tmp_path / "nope.h5ad", tmp_path / "o")) == 2
    err = capsys.readouterr().err
    assert "'guide' is not a column" in err and "does not exist" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_cli_process_exits_2_without_traceback(good_h5ad, tmp_path):
    data = _variant(good_h5ad, tmp_path, _set(-1))
    result = subprocess.run(
        [sys.executable, "-m", "samsvae_plus.cli.main", *_train_args(data, tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_train_writes_a_loadable_model(good_h5ad, tmp_path, capsys):
    import samsvae_plus as sp

    out = tmp_path / "run"
    assert (
        main(
            _train_args(good_h5ad, out)
            + ["--max-epochs", "3", "--latent-dim", "3", "--n-particles", "1"]
        )
        == 0
    )
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("samsvae-plus train:") and str(out) in summary
    model = sp.SAMSVAE.load(out)
    assert model.is_trained and len(model.history.train_elbo) == 3
    assert json.loads((out / "split.json").read_text())["name"] == "random"
    assert (out / "figures" / "training.png").stat().st_size > 0
    # an existing output is not overwritten silently
    assert main(_train_args(good_h5ad, out)) == 2


def test_train_names_each_step_in_the_log(good_h5ad, tmp_path, caplog):
    """From the set-up to the written model, no step runs in silence (--verbosity info)."""
    import logging

    out = tmp_path / "run"
    argv = _train_args(good_h5ad, out) + ["--max-epochs", "3", "--dense-epochs", "1"]
    with caplog.at_level(logging.INFO):
        assert main([*argv, "--latent-dim", "3", "--n-particles", "1"]) == 0
    messages = [record.getMessage() for record in caplog.records]
    expected = [
        "training on ",
        "computing the encoder's input and library-size statistics",
        "dense start: 1 epoch with every mask pinned to 1",
        "dense start: finished at epoch 0",
        "rotating the latent basis",
        "training: finished at epoch 2; best epoch ",
        "training: restoring the parameters of epoch ",
        "training: writing the final checkpoint",
        f"writing the model, its history and figures/training.png to {out}",
    ]
    starts = [next(i for i, m in enumerate(messages) if m.startswith(e)) for e in expected]
    assert starts == sorted(starts), messages


@pytest.mark.slow
def test_demo_smoke(tmp_path, capsys, caplog):
    import logging

    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--n-perturbations", "6", "--max-epochs", "4"]
    with caplog.at_level(logging.INFO):
        code = main([*argv, "--dense-epochs", "2", "--no-progress"])
    assert code == 0
    messages = [record.getMessage() for record in caplog.records]
    expected = [
        "simulating 6 perturbations in ",
        "training on ",
        "comparing the masks and the posterior ATE with the simulation's truth",
        f"writing the model, metrics, report.md and figures to {out}",
    ]
    starts = [next(i for i, m in enumerate(messages) if m.startswith(e)) for e in expected]
    assert starts == sorted(starts), messages
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("samsvae-plus demo:") and "mask F1" in summary
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["mask_f1"] <= 1 and -1 <= metrics["ate_pearson"] <= 1
    for name in [
        "report.md",
        "figures/masks.png",
        "figures/training.png",
        "model/params.pt",
        "ate.csv",
    ]:
        assert (out / name).stat().st_size > 0, name


def test_simulate_writes_h5ad_with_ground_truth(tmp_path, capsys):
    out = tmp_path / "sim.h5ad"
    assert (
        main(
            [
                "simulate",
                "--out",
                str(out),
                "--n-perturbations",
                "4",
                "--n-genes",
                "20",
                "--n-combinations",
                "1",
                "--cells-per-condition",
                "10",
                "--n-control-cells",
                "20",
            ]
        )
        == 0
    )
    adata = ad.read_h5ad(out)
    assert adata.n_obs == 20 + 10 * 5 and adata.uns["simulation"]["mask"].shape == (4, 10)
    assert "samsvae-plus simulate:" in capsys.readouterr().out


def test_diverged_training_exits_1_and_keeps_the_last_good_model(
    good_h5ad, tmp_path, capsys, monkeypatch
):
    from samsvae_plus.errors import DivergenceError
    from samsvae_plus.model.family import SAMSVAE

    def diverge(self, *args, **kwargs):
        raise DivergenceError("training diverged at step 3 (epoch 0): the loss became nan")

    monkeypatch.setattr(SAMSVAE, "train", diverge)
    out = tmp_path / "run"
    assert main(_train_args(good_h5ad, out)) == 1
    assert "diverged at step 3" in capsys.readouterr().err
    assert (out / "DIVERGED.txt").exists() and (out / "params.pt").exists()


@pytest.mark.slow
def test_an_interrupted_train_resumes_to_the_uninterrupted_model(
    good_h5ad, tmp_path, capsys, monkeypatch
):
    import torch

    from samsvae_plus.inference.model_files import read_tensors

    options = ["--max-epochs", "4", "--dense-epochs", "2", "--latent-dim", "3"]
    options += ["--n-particles", "1", "--batch-size", "32", "--checkpoint-every", "2"]
    reference, out = tmp_path / "reference", tmp_path / "run"
    args = _train_args(good_h5ad, out) + options  # later --max-epochs wins
    assert main(_train_args(good_h5ad, reference) + options) == 0

    step, count = torch.optim.Adam.step, [0]

    def interrupting_step(self, *a, **k):
        result = step(self, *a, **k)
        count[0] += 1
        if count[0] == 7:
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(torch.optim.Adam, "step", interrupting_step)
    assert main(args) == 130
    monkeypatch.setattr(torch.optim.Adam, "step", step)
    checkpoints = tmp_path / "run.checkpoints"
    assert not out.exists() and (checkpoints / "checkpoint.json").exists()
    capsys.readouterr()
    assert main(args) == 2  # an interrupted run is not silently restarted
    assert "--resume" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0
    assert not checkpoints.exists()  # the finished model is in --out
    expected, resumed = read_tensors(reference / "params.pt"), read_tensors(out / "params.pt")
    for name, value in expected.items():
        assert torch.equal(value, resumed[name]), name


def test_train_and_demo_flags_come_from_the_option_records(capsys):
    from dataclasses import fields

    from samsvae_plus.cli.main import build_parser
    from samsvae_plus.cli.train import COMMAND_LINE_DEFAULTS, MODEL_OPTIONS, TRAINING_OPTIONS
    from samsvae_plus.inference.training_options import TrainingOptions
    from samsvae_plus.module.config import SAMSVAEConfig

    required = ["--data", "d.h5ad", "--perturbation-key", "k", "--control-label", "c"]
    args = build_parser().parse_args(["train", *required, "--out", "o"])
    model = {f.name: f.default for f in SAMSVAEConfig.argument_fields()}
    training = {f.name: f.default for f in fields(TrainingOptions)}
    for name in MODEL_OPTIONS:
        assert getattr(args, name) == model[name], name
    for name in TRAINING_OPTIONS:
        value = not args.no_progress if name == "progress" else getattr(args, name)
        assert value == COMMAND_LINE_DEFAULTS.get(name, training[name]), name
    assert args.checkpoint_every == training["checkpoint_every"]
    # the demo trains with the package defaults, so that it shows what a user gets
    demo = vars(build_parser().parse_args(["demo"]))
    for name in [*MODEL_OPTIONS, *TRAINING_OPTIONS]:
        if name in demo and name != "progress":
            assert demo[name] == vars(args)[name], name
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    shown = capsys.readouterr().out
    assert "{mean_field,correlated_basal,correlated_embedding,correlated}" in shown
    assert "{sqrt,linear}" in shown and "(default: 400)" in shown
