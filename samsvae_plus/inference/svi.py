"""Stochastic variational inference: the one training loop every model uses.

The loss is Pyro's ``Trace_ELBO`` with vectorized particles. The cell plate is sized to
the whole training set and subsampled by each minibatch, so local terms are scaled by
``n_cells / batch_size`` while the global terms (masks, embeddings) are counted once: each
step's loss is an unbiased estimate of the negative full-data ELBO. Reported ELBOs are per
cell (nats).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from pyro.infer import Trace_ELBO
from torch import nn
from tqdm.auto import tqdm

from samsvae_plus.data.loaders import InMemoryLoader
from samsvae_plus.errors import DivergenceError
from samsvae_plus.inference.annealing import GlobalKLWeight, linear_warmup


@dataclass
class TrainingHistory:
    """Per-epoch ELBOs (nats per cell) and how training ended."""

    train_elbo: list[float] = field(default_factory=list)
    validation_elbo: list[float] = field(default_factory=list)
    steps: int = 0
    best_epoch: int = -1
    stopped_early: bool = False
    wall_time_s: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainingHistory:
        return cls(**data)


def make_loss(pair: nn.ModuleDict, n_particles: int, kl_weight: GlobalKLWeight | None = None) -> nn.Module:
    """The negative ELBO of ``pair["model"]`` and ``pair["guide"]`` as a torch module.

    With ``kl_weight``, the global sites of model and guide are scaled by its weight.
    """
    elbo = Trace_ELBO(num_particles=n_particles, vectorize_particles=True, max_plate_nesting=1)
    model, guide = pair["model"], pair["guide"]
    if kl_weight is None:
        return elbo(model, guide)
    return ELBOModule(model, guide, elbo, kl_weight)


class ELBOModule(nn.Module):
    """Pyro's ELBO module, with model and guide run under a shared KL-weight messenger."""

    def __init__(self, model: nn.Module, guide: nn.Module, elbo: Trace_ELBO, kl_weight: GlobalKLWeight) -> None:
        super().__init__()
        self.model, self.guide, self.elbo, self.kl_weight = model, guide, elbo, kl_weight

    def forward(self, *args, **kwargs) -> torch.Tensor:
        return self.elbo.differentiable_loss(self.kl_weight(self.model), self.kl_weight(self.guide), *args, **kwargs)


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of a module's state."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@torch.no_grad()
def estimate_elbo(loss: nn.Module, loader: InMemoryLoader, *, seed: int = 0) -> float:
    """Full-data ELBO per cell of ``loader``'s cells, from one pass of minibatches.

    Each minibatch loss estimates the full-data loss; weighting them by their share of the
    cells gives one estimate. Sampling runs on a forked, seeded generator, so repeated
    calls on the same parameters agree and the training stream is left untouched.
    """
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        total = sum(float(loss(batch, loader.n_cells)) * len(batch) for batch in loader)
    return -total / loader.n_cells / loader.n_cells


def train_svi(
    pair: nn.ModuleDict,
    train_loader: InMemoryLoader,
    validation_loader: InMemoryLoader | None = None,
    *,
    max_epochs: int = 400,
    lr: float = 3e-4,
    n_particles: int = 5,
    early_stopping_patience: int | None = 20,
    grad_clip: float | None = None,
    kl_warmup_epochs: int = 0,
    progress: bool = True,
    on_best: Callable[[dict[str, torch.Tensor], int], None] | None = None,
) -> TrainingHistory:
    """Fit ``pair`` (a ``ModuleDict`` with ``"model"`` and ``"guide"``) by SVI with Adam.

    After every epoch the validation ELBO is estimated; the best state is kept (and handed
    to ``on_best``, which may write a checkpoint) and restored at the end. Training stops
    early when the validation ELBO has not improved for ``early_stopping_patience`` epochs.

    Raises
    ------
    DivergenceError
        If a loss or gradient is NaN or infinite. The parameters are first restored to the
        end of the last completed epoch, so the model stays usable.
    """
    kl_weight = GlobalKLWeight()
    loss = make_loss(pair, n_particles, kl_weight)
    exact_loss = make_loss(pair, n_particles)
    warmup_steps = kl_warmup_epochs * len(train_loader)
    params = [p for p in loss.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    history = TrainingHistory()
    best_score, best_state = -math.inf, snapshot(pair)
    last_good = best_state
    epochs_since_best = 0
    start = time.perf_counter()
    bar = tqdm(range(max_epochs), desc="training", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        pair.train()
        epoch_loss = 0.0
        for batch in train_loader:
            kl_weight.weight = linear_warmup(history.steps, warmup_steps)
            value = loss(batch, train_loader.n_cells)
            if not torch.isfinite(value):
                _diverged(pair, last_good, f"the loss became {float(value)}", history.steps, epoch)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            norm = torch.nn.utils.clip_grad_norm_(params, grad_clip or math.inf)
            if not torch.isfinite(norm):
                _diverged(pair, last_good, "a gradient became non-finite", history.steps, epoch)
            optimizer.step()
            history.steps += 1
            epoch_loss += float(value.detach()) * len(batch)
        history.train_elbo.append(-epoch_loss / train_loader.n_cells**2)

        pair.eval()
        if validation_loader is not None and validation_loader.n_cells > 0:
            score = estimate_elbo(exact_loss, validation_loader)
            history.validation_elbo.append(score)
        else:
            score = history.train_elbo[-1]
        last_good = snapshot(pair)
        if epoch + 1 < kl_warmup_epochs:
            pass  # the objective is still changing, so earlier epochs cannot be compared
        elif score > best_score:
            best_score, best_state, history.best_epoch = score, last_good, epoch
            epochs_since_best = 0
            if on_best is not None:
                on_best(best_state, epoch)
        else:
            epochs_since_best += 1
        bar.set_postfix(elbo=f"{history.train_elbo[-1]:.1f}", val=f"{score:.1f}", refresh=False)
        if early_stopping_patience is not None and epochs_since_best > early_stopping_patience:
            history.stopped_early = True
            break
    bar.close()
    pair.load_state_dict(best_state)
    history.wall_time_s = time.perf_counter() - start
    return history


def _diverged(pair: nn.Module, last_good: dict, what: str, step: int, epoch: int) -> None:
    pair.load_state_dict(last_good)
    raise DivergenceError(
        f"training diverged at step {step} (epoch {epoch}): {what}; the parameters of the "
        "last completed epoch were restored. Lower lr or set grad_clip"
    )
