"""Crash-safe training: checkpoints, kill-and-resume, refusals, divergence."""

import json
import re
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from helpers.simulations import TINY, tiny_simulation

import samsvae_plus as sp
from samsvae_plus.errors import DivergenceError, InputError
from samsvae_plus.inference.model_files import read_tensors
from samsvae_plus.inference.training_checkpoints import CHECKPOINT_FILE

# Every test here trains, most in subprocesses that are killed and resumed.
pytestmark = pytest.mark.slow

# Small enough for a subprocess to train in a few seconds; the dense start makes a run two
# phases (dense, then sparse after the rotation), and a kill can land in either.
TRAINING = dict(max_epochs=8, dense_epochs=3, batch_size=16, n_particles=2, progress=False, seed=3)
# The tiny simulation with more controls: about 100 training cells.
SIMULATION = {**TINY, "n_control_cells": 40, "seed": 0}
STEPS_PER_EPOCH = 7  # about 100 training cells in batches of 16; checked by a test below

SCRIPT = (
    textwrap.dedent(
        """
    import os, signal, sys
    import torch
    import samsvae_plus as sp

    torch.set_num_threads(1)
    checkpoint_dir, kill_at, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    adata = sp.datasets.simulate(**SIMULATION)
    sp.setup_anndata(adata, "condition", "control", context_key="cell_type")
    if kill_at > 0:
        # SIGKILL this very process after the given optimizer step: no handler runs, no
        # file is closed cleanly, exactly as when a scheduler kills a job.
        step = torch.optim.Adam.step
        count = [0]

        def step_then_maybe_die(self, *args, **kwargs):
            result = step(self, *args, **kwargs)
            count[0] += 1
            if count[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        torch.optim.Adam.step = step_then_maybe_die
    model = sp.SAMSVAE(adata, latent_dim=3)
    model.train(
        **TRAINING,
        checkpoint_dir=None if checkpoint_dir == "-" else checkpoint_dir,
        checkpoint_every=5,
        resume=checkpoint_dir != "-",  # the first run finds no checkpoint and starts afresh
    )
    torch.save(model.module.state_dict(), out)
    """
    )
    .replace("**TRAINING", f"**{TRAINING!r}")
    .replace("**SIMULATION", f"**{SIMULATION!r}")
)


def run_script(tmp_path, checkpoint_dir, kill_at, out):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    return subprocess.run(
        [sys.executable, str(script), str(checkpoint_dir), str(kill_at), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_run_killed_twice_and_resumed_ends_with_the_uninterrupted_parameters(tmp_path):
    uninterrupted = run_script(tmp_path, "-", 0, tmp_path / "reference.pt")
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    checkpoints = tmp_path / "checkpoints"
    # Killed in the dense phase (step 12, two steps after the checkpoint at step 10) ...
    killed = run_script(tmp_path, checkpoints, 12, tmp_path / "never.pt")
    assert killed.returncode == -signal.SIGKILL
    record = json.loads((checkpoints / CHECKPOINT_FILE).read_text())
    assert record["phase"] == "dense" and record["phases"]["dense"]["history"]["steps"] == 10
    # ... resumed and killed again in the sparse phase (the dense phase has 21 steps, 11
    # of them left) ...
    killed_again = run_script(tmp_path, checkpoints, 30, tmp_path / "never.pt")
    assert killed_again.returncode == -signal.SIGKILL, killed_again.stderr
    assert json.loads((checkpoints / CHECKPOINT_FILE).read_text())["phase"] == "sparse"
    # ... and resumed to the end.
    resumed = run_script(tmp_path, checkpoints, 0, tmp_path / "resumed.pt")
    assert resumed.returncode == 0, resumed.stderr
    reference = torch.load(tmp_path / "reference.pt", weights_only=True)
    final = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert reference.keys() == final.keys()
    for name, value in reference.items():
        assert torch.equal(value, final[name]), name
    assert not (tmp_path / "never.pt").exists()


def resume_after_interrupt(adata_factory, tmp_path, model_class, interrupt_at, **config):
    """Train once uninterrupted and once interrupted at a step and resumed, in this process."""
    reference = model_class(adata_factory(), **config)
    reference.train(**TRAINING)
    step = torch.optim.Adam.step
    count = [0]

    def interrupting_step(self, *args, **kwargs):
        result = step(self, *args, **kwargs)
        count[0] += 1
        if count[0] == interrupt_at:
            raise KeyboardInterrupt
        return result

    interrupted = model_class(adata_factory(), **config)
    torch.optim.Adam.step = interrupting_step
    try:
        with pytest.raises(KeyboardInterrupt):
            interrupted.train(**TRAINING, checkpoint_dir=tmp_path, checkpoint_every=4)
    finally:
        torch.optim.Adam.step = step
    resumed = model_class(adata_factory(), **config)
    resumed.train(**TRAINING, checkpoint_dir=tmp_path, checkpoint_every=4, resume=True)
    return reference, resumed


def tiny():
    return tiny_simulation(**SIMULATION)


def test_steps_per_epoch_is_what_the_kill_points_assume():
    model = sp.SAMSVAE(tiny(), latent_dim=3)
    history = model.train(**{**TRAINING, "max_epochs": 2, "dense_epochs": 1})
    assert history.steps == 2 * STEPS_PER_EPOCH


@pytest.mark.parametrize(
    "model_class, config",
    [(sp.CPAVAE, {"latent_dim": 3}), (sp.ConditionalVAE, {"latent_dim": 3})],
    ids=["cpa-vae", "conditional-vae"],
)
def test_models_without_a_dense_start_resume_exactly(tmp_path, model_class, config):
    reference, resumed = resume_after_interrupt(tiny, tmp_path, model_class, 30, **config)
    assert resumed.history.train_elbo == reference.history.train_elbo
    assert resumed.history.best_epoch == reference.history.best_epoch
    for name, value in reference.module.state_dict().items():
        assert torch.equal(value, resumed.module.state_dict()[name]), name


def test_resuming_a_finished_run_changes_nothing(tmp_path):
    model = sp.SAMSVAE(tiny(), latent_dim=3)
    model.train(**TRAINING, checkpoint_dir=tmp_path, checkpoint_every=50)
    again = sp.SAMSVAE(tiny(), latent_dim=3)
    history = again.train(**TRAINING, checkpoint_dir=tmp_path, resume=True)
    assert history.train_elbo == model.history.train_elbo
    for name, value in model.module.state_dict().items():
        assert torch.equal(value, again.module.state_dict()[name]), name


def test_a_checkpoint_of_another_run_is_refused_with_the_difference_named(tmp_path):
    model = sp.SAMSVAE(tiny(), latent_dim=3)
    model.train(**{**TRAINING, "max_epochs": 2, "dense_epochs": 1}, checkpoint_dir=tmp_path)
    other = sp.SAMSVAE(tiny(), latent_dim=3)
    with pytest.raises(InputError, match=r"another run \(batch_size: 16 there, 32 here"):
        other.train(
            **{**TRAINING, "max_epochs": 2, "dense_epochs": 1, "batch_size": 32},
            checkpoint_dir=tmp_path,
            resume=True,
        )
    with pytest.raises(InputError, match="pass resume=True"):
        other.train(**{**TRAINING, "max_epochs": 2, "dense_epochs": 1}, checkpoint_dir=tmp_path)
    with pytest.raises(InputError, match="needs checkpoint_dir"):
        other.train(resume=True)


def test_divergence_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    model = sp.SAMSVAE(tiny(), latent_dim=3)
    decoder = model.module["model"].likelihood.decoder
    forward, calls = decoder.forward, [0]

    def poisoned(z):
        calls[0] += 1
        out = forward(z)
        return out * float("nan") if calls[0] > 17 else out

    monkeypatch.setattr(decoder, "forward", poisoned)
    with pytest.raises(DivergenceError, match=r"diverged at step (\d+)") as caught:
        model.train(**{**TRAINING, "dense_epochs": 0}, checkpoint_dir=tmp_path, checkpoint_every=5)
    diverged_step = int(re.search(r"step (\d+)", str(caught.value)).group(1))
    record = json.loads((tmp_path / CHECKPOINT_FILE).read_text())
    saved_step = record["phases"]["svi"]["history"]["steps"]
    assert 0 < saved_step <= diverged_step
    tensors = read_tensors(tmp_path / record["tensors"])
    assert all(
        torch.isfinite(value).all() for value in tensors.values() if value.is_floating_point()
    )
    assert all(torch.isfinite(p).all() for p in model.module.parameters())


def test_a_checkpoint_tensor_file_carrying_code_is_refused(tmp_path):
    model = sp.SAMSVAE(tiny(), latent_dim=3)
    model.train(**{**TRAINING, "max_epochs": 2, "dense_epochs": 1}, checkpoint_dir=tmp_path)
    record = json.loads((tmp_path / CHECKPOINT_FILE).read_text())

    class Payload:
        def __reduce__(self):
            return (print, ("code ran",))

    torch.save({"module.x": Payload()}, tmp_path / record["tensors"])
    again = sp.SAMSVAE(tiny(), latent_dim=3)
    with pytest.raises(InputError, match="not a plain tensor checkpoint"):
        again.train(
            **{**TRAINING, "max_epochs": 2, "dense_epochs": 1},
            checkpoint_dir=tmp_path,
            resume=True,
        )
