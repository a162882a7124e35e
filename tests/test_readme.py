"""The README is a guide that works: at most 200 lines, and its quick start and command-line
recipe run as written on a small simulated screen in the README's own keys. (The demo
command is run by tests/cli/test_demo_quality.py, the test command by CI itself.)"""

import re
import shlex
from pathlib import Path

import pytest

import samsvae_plus as sp
from samsvae_plus.cli.main import main

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(after_heading: str, language: str) -> str:
    """The first ``language`` code block after the heading ``after_heading``."""
    text = README.read_text(encoding="utf-8")
    section = text.split(f"\n## {after_heading}\n", 1)[1]
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def screen(tmp_path, monkeypatch):
    """``screen.h5ad`` in the working directory: raw counts, ``obs["gene"]`` labels with
    KLF1 and MAP2K6 among them, controls labelled ``NT``, two cell types."""
    adata = sp.datasets.simulate(
        n_perturbations=6,
        n_contexts=2,
        n_genes=40,
        cells_per_condition=15,
        n_control_cells=40,
        n_combinations=2,
        ate_cells=20,
        seed=0,
    )
    names = {"control": "NT", "P000": "KLF1", "P001": "MAP2K6"}
    adata.obs["gene"] = [
        "+".join(names.get(g, g) for g in label.split("+")) for label in adata.obs["condition"]
    ]
    adata.obs = adata.obs[["gene", "cell_type"]]
    del adata.uns["simulation"]
    monkeypatch.chdir(tmp_path)
    adata.write_h5ad("screen.h5ad")
    return tmp_path


def test_readme_is_a_guide_of_at_most_200_lines():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 200


@pytest.mark.slow
def test_the_quick_start_runs_as_written(screen):
    import matplotlib

    matplotlib.use("Agg")  # sc.pl.umap draws without a display
    namespace: dict = {}
    exec(compile(_block("Your own screen", "python"), "README quick start", "exec"), namespace)
    adata, pred = namespace["adata"], namespace["pred"]
    assert adata.obsm["X_samsvae_basal"].shape == (
        adata.n_obs,
        namespace["model"].config.latent_dim,
    )
    assert set(pred.obs["gene"]) == {"KLF1", "KLF1+MAP2K6", "NT"}
    assert set(namespace["ate"].index) == set(adata.obs["gene"]) - {"NT"}
    assert namespace["model"].is_trained and (screen / "my_model").is_dir()


@pytest.mark.slow
def test_the_command_line_recipe_runs_as_written(screen):
    commands = [
        line for line in _block("Command line: train, predict, score", "bash").splitlines() if line
    ]
    assert [shlex.split(c)[1] for c in commands] == ["train", "predict", "score", "evaluate"]
    for command in commands:
        program, *args = shlex.split(command)
        assert program == "samsvae-plus"
        assert main(args) == 0, command
    assert (screen / "score.json").stat().st_size > 0
    assert (screen / "model_eval" / "metrics.json").is_file()
