"""The rule of the commands that write reports: a figure or optional report that fails is
logged and left out, and never costs the command the outputs it has computed."""

import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

import samsvae_plus as sp  # noqa: E402
from samsvae_plus import plotting  # noqa: E402
from samsvae_plus.cli.main import SUBCOMMANDS, main  # noqa: E402
from samsvae_plus.cli.optional_outputs import OptionalOutputs  # noqa: E402

CLI = Path(sp.__file__).parent / "cli"


def test_attempt_returns_the_result_or_logs_the_failure(caplog):
    outputs = OptionalOutputs("evaluate")
    assert outputs.attempt("first", lambda: 3) == 3
    assert outputs.summary() == ""

    def fail():
        raise KeyError("gene")

    with caplog.at_level(logging.WARNING):
        assert outputs.attempt("report.md", fail) is None
    assert outputs.failed == {"report.md": "KeyError: 'gene'"}
    (record,) = caplog.records
    assert record.levelname == "WARNING"
    assert "samsvae-plus evaluate" in record.getMessage()
    assert "report.md" in record.getMessage() and "KeyError: 'gene'" in record.getMessage()
    assert "not written: report.md" in outputs.summary()


def test_interrupts_are_not_swallowed():
    def interrupt():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        OptionalOutputs("train").attempt("figure", interrupt)


def test_a_figure_that_fails_leaves_no_file_and_no_open_figure(tmp_path, caplog):
    outputs = OptionalOutputs("demo")
    before = plt.get_fignums()

    def half_drawn():
        fig, ax = plt.subplots()
        ax.plot([0, 1])
        raise ValueError("s must be float")

    def unrenderable():
        fig, ax = plt.subplots()
        ax.set_title(r"$\unknowncommand$")  # fails only when drawn
        return fig

    def fine():
        fig, ax = plt.subplots()
        ax.plot([0, 1])
        return fig

    assert not outputs.figure(tmp_path, "half.png", half_drawn)
    assert not outputs.figure(tmp_path, "unrenderable.png", unrenderable)
    assert outputs.figure(tmp_path, "fine.png", fine)
    assert [p.name for p in tmp_path.iterdir()] == ["fine.png"]
    assert plt.get_fignums() == before
    assert list(outputs.failed) == ["half.png", "unrenderable.png"]


def test_commands_save_figures_only_through_the_guard():
    """Every figure a command writes goes through OptionalOutputs.figure, so none can fail a
    run: no command module calls savefig itself."""
    for name in SUBCOMMANDS:
        source = (CLI / f"{name}.py").read_text()
        assert ".savefig(" not in source, name


def test_train_keeps_the_model_when_its_figure_fails(tmp_path, capsys, caplog, monkeypatch):
    adata = sp.datasets.simulate(
        n_perturbations=4,
        n_contexts=1,
        n_genes=20,
        latent_dim=3,
        n_combinations=1,
        cells_per_condition=10,
        n_control_cells=20,
        seed=2,
    )
    del adata.uns["simulation"]
    adata.write_h5ad(tmp_path / "data.h5ad")

    def broken(*args, **kwargs):
        raise RuntimeError("no display")

    monkeypatch.setattr(plotting, "training_curves", broken)
    out = tmp_path / "model"
    args = ["train", "--data", str(tmp_path / "data.h5ad"), "--perturbation-key", "condition"]
    args += ["--control-label", "control", "--out", str(out), "--max-epochs", "2"]
    args += ["--latent-dim", "3", "--n-particles", "1", "--no-progress"]
    with caplog.at_level(logging.WARNING):
        assert main(args) == 0
    model = sp.SAMSVAE.load(out)
    assert model.is_trained and len(model.history.train_elbo) == 2
    assert len(json.loads((out / "history.json").read_text())["train_elbo"]) == 2
    assert not (out / "figures" / "training.png").exists()
    assert any("figures/training.png" in r.getMessage() for r in caplog.records)
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("samsvae-plus train:")
    assert "not written: figures/training.png" in summary
