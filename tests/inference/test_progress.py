"""What training shows while it runs: the progress bar's postfix, early stopping and the steps
after the loop, on the bar and in the log."""

import logging
import re

import pytest
from tqdm.auto import tqdm

import samsvae_plus as sp
from samsvae_plus.inference import svi

TRAIN = dict(dense_epochs=0, batch_size=32, n_particles=1, seed=0)


@pytest.fixture()
def falling_validation(monkeypatch):
    """Validation ELBOs -100, -101, -102, ...: epoch 0 stays the best, so early stopping
    ends training after ``patience + 1`` epochs."""
    scores = iter(-100.0 - k for k in range(1000))
    monkeypatch.setattr(svi, "estimate_elbo", lambda loss, loader: next(scores))


def test_early_stopping_is_shown_on_the_bar_and_logged(
    tiny_adata, falling_validation, capsys, caplog
):
    model = sp.SAMSVAE(tiny_adata, latent_dim=3)
    with caplog.at_level(logging.INFO, logger="samsvae_plus"):
        history = model.train(max_epochs=50, early_stopping_patience=2, progress=True, **TRAIN)
    assert history.stopped_early and len(history.train_elbo) == 4 and history.best_epoch == 0
    bar = capsys.readouterr().err.replace("\r", "\n").splitlines()
    final = [line for line in bar if line.strip()][-1]
    assert final.startswith("training stopped early at epoch 3 (best epoch 0)"), final
    assert "4/50" in final
    messages = [record.getMessage() for record in caplog.records]
    assert (
        "training: stopped early at epoch 3: no better validation ELBO for 3 epochs; "
        "best epoch 0" in messages
    )
    assert "training: restoring the parameters of epoch 0" in messages


def test_without_a_bar_the_log_still_tells(tiny_adata, falling_validation, capsys, caplog):
    model = sp.SAMSVAE(tiny_adata, latent_dim=3)
    with caplog.at_level(logging.INFO, logger="samsvae_plus"):
        model.train(max_epochs=50, early_stopping_patience=2, progress=False, **TRAIN)
    assert capsys.readouterr().err == ""
    assert any("stopped early at epoch 3" in r.getMessage() for r in caplog.records)


def test_the_postfix_shows_the_epoch_the_bar_counts(tiny_adata, falling_validation, monkeypatch):
    seen = []

    class Recording(tqdm):
        def update(self, n=1):
            shown = super().update(n)
            seen.append((self.n, self.postfix))
            return shown

    monkeypatch.setattr(svi, "tqdm", Recording)
    model = sp.SAMSVAE(tiny_adata, latent_dim=3)
    history = model.train(max_epochs=3, early_stopping_patience=None, progress=True, **TRAIN)
    assert [n for n, _ in seen] == [1, 2, 3]
    for n, postfix in seen:
        assert re.search(rf"val={history.validation_elbo[n - 1]:.1f}\b", postfix), (n, postfix)
        assert f"elbo={history.train_elbo[n - 1]:.1f}" in postfix, (n, postfix)


def test_the_phases_of_a_dense_start_are_logged_in_the_historys_epochs(
    tiny_adata, falling_validation, caplog
):
    model = sp.SAMSVAE(tiny_adata, latent_dim=3)
    with caplog.at_level(logging.INFO, logger="samsvae_plus"):
        history = model.train(
            max_epochs=40,
            early_stopping_patience=2,
            progress=False,
            **{**TRAIN, "dense_epochs": 3},
        )
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0].startswith("training on ")
    assert "dense start: 3 epochs with every mask pinned to 1" in messages
    assert "dense start: finished at epoch 2" in messages
    assert any(m.startswith("rotating the latent basis") for m in messages)
    # the sparse phase's best epoch is its first, epoch 3 of the combined history
    assert history.best_epoch == 3
    assert any(m.startswith("training: stopped early at epoch 6:") for m in messages)
    assert "training: restoring the parameters of epoch 3" in messages
