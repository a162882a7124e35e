"""Stochastic variational inference: the one training loop every model uses.

The loss is Pyro's ``Trace_ELBO`` with vectorized particles. The cell plate is sized to
the whole training set and subsampled by each minibatch, so local terms are scaled by
``n_cells / batch_size`` while the global terms (masks, embeddings) are counted once: each
step's loss is an unbiased estimate of the negative full-data ELBO. Reported ELBOs are per
cell (nats).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import pyro
import torch
from pyro.infer import Trace_ELBO
from pyro.infer.elbo import ELBOModule
from torch import nn
from tqdm.auto import tqdm

from samsvae_plus.data.loaders import MinibatchLoader
from samsvae_plus.errors import DivergenceError
from samsvae_plus.inference.data_parallel import DataParallel, main_process_info
from samsvae_plus.inference.kl_weights import KLWeights
from samsvae_plus.inference.training_checkpoints import TrainingCheckpoints
from samsvae_plus.inference.training_options import REFERENCE_BATCH_SIZE

logger = logging.getLogger(__name__)


@dataclass
class TrainingHistory:
    """Per-epoch ELBOs (nats per cell) and how training ended.

    ``dense_epochs`` counts the leading epochs of a dense start (masks pinned to 1); the
    best epoch is always chosen after them.
    """

    train_elbo: list[float] = field(default_factory=list)
    validation_elbo: list[float] = field(default_factory=list)
    steps: int = 0
    best_epoch: int = -1
    dense_epochs: int = 0
    stopped_early: bool = False
    wall_time_s: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainingHistory:
        return cls(**data)

    def extend(self, later: TrainingHistory) -> TrainingHistory:
        """This history followed by ``later`` (whose best epoch then counts from ours)."""
        return TrainingHistory(
            train_elbo=self.train_elbo + later.train_elbo,
            validation_elbo=self.validation_elbo + later.validation_elbo,
            steps=self.steps + later.steps,
            best_epoch=len(self.train_elbo) + later.best_epoch,
            dense_epochs=self.dense_epochs + later.dense_epochs,
            stopped_early=later.stopped_early,
            wall_time_s=self.wall_time_s + later.wall_time_s,
        )


def make_loss(
    pair: nn.ModuleDict, n_particles: int, weights: KLWeights | None = None
) -> ELBOModule:
    """The negative ELBO of ``pair["model"]`` and ``pair["guide"]`` as a torch module,
    called with ``(batch, n_cells)``; under ``weights``, both run inside the same
    :class:`KLWeights`, which a schedule may change between calls.

    This is Pyro's own ``Trace_ELBO(...)(model, guide)``: its losses and gradients are
    bitwise those of the hand-written module it replaced (see the design notes).
    """
    elbo = Trace_ELBO(num_particles=n_particles, vectorize_particles=True, max_plate_nesting=1)
    if weights is None:
        return elbo(pair["model"], pair["guide"])
    return elbo(weights(pair["model"]), weights(pair["guide"]))


def scaled_learning_rate(lr: float, batch_size: int, scaling: str | None) -> float:
    """``lr`` for ``batch_size`` cells per step, given at
    :data:`~samsvae_plus.inference.training_options.REFERENCE_BATCH_SIZE`.

    ``"sqrt"`` keeps the variance of an Adam step's noise about constant as the batch
    grows (the usual rule for Adam); ``"linear"`` keeps the distance travelled per epoch,
    as for SGD, and is safe only for moderate factors; ``None`` uses ``lr`` as given.
    """
    factor = batch_size / REFERENCE_BATCH_SIZE
    return {None: lr, "sqrt": lr * math.sqrt(factor), "linear": lr * factor}[scaling]


def parameter_groups(pair: nn.ModuleDict, lr: float, global_lr_factor: float) -> list[dict]:
    """Adam groups: per-perturbation parameters get ``lr * global_lr_factor``.

    Modules name them with a ``per_perturbation_parameters()`` method (mask logits,
    embedding means and scales). Each receives gradient only from the few cells of its
    perturbation in a batch and must travel O(1) in a few thousand steps, while Adam moves a
    parameter by about ``lr`` per step.
    """
    free = {
        id(p)
        for module in pair.modules()
        if hasattr(module, "per_perturbation_parameters")
        for p in module.per_perturbation_parameters()
    }
    free_params = [p for p in pair.parameters() if id(p) in free]
    other = [p for p in pair.parameters() if id(p) not in free]
    return [{"params": free_params, "lr": lr * global_lr_factor}, {"params": other, "lr": lr}]


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of a module's state."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@torch.no_grad()
def estimate_elbo(loss: nn.Module, loader: MinibatchLoader, *, seed: int = 0) -> float:
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


@dataclass
class LoopState:
    """Where one training phase stands: with the tensors, enough to continue it exactly.

    ``loader_state`` is the shuffling generator at the start of the current epoch, so a
    resumed epoch draws the same order and skips the ``batches_done`` already taken.
    """

    history: TrainingHistory = field(default_factory=TrainingHistory)
    epoch: int = 0
    batches_done: int = 0
    epoch_loss: float = 0.0
    best_score: float | None = None
    epochs_since_best: int = 0
    loader_state: dict | None = None
    finished: bool = False

    def to_dict(self) -> dict:
        return {**asdict(self), "history": self.history.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> LoopState:
        return cls(**{**data, "history": TrainingHistory.from_dict(data["history"])})


def train_svi(
    pair: nn.ModuleDict,
    train_loader: MinibatchLoader,
    validation_loader: MinibatchLoader | None = None,
    *,
    max_epochs: int,
    lr: float,
    n_particles: int,
    early_stopping_patience: int | None,
    global_lr_factor: float = 1.0,
    grad_clip: float | None = None,
    local_kl_weight: Callable[[int], float] | None = None,
    keep_best: bool = True,
    progress: bool = True,
    description: str = "training",
    checkpoints: TrainingCheckpoints | None = None,
    phase: str = "svi",
    parallel: DataParallel | None = None,
    epoch_offset: int = 0,
) -> TrainingHistory:
    """Fit ``pair`` (a ``ModuleDict`` with ``"model"`` and ``"guide"``) by SVI with Adam.

    After every epoch the validation ELBO (exact, unweighted) is estimated. With
    ``keep_best`` the best state is kept and restored at the end, and training stops when
    the validation ELBO has not improved for ``early_stopping_patience`` epochs. Epochs
    trained under a KL weight other than 1 are never chosen as best.

    Parameters
    ----------
    max_epochs, lr, n_particles, early_stopping_patience, global_lr_factor, grad_clip
        As in :class:`~samsvae_plus.inference.training_options.TrainingOptions` (``lr``
        already scaled to the batch size); ``global_lr_factor`` 1 gives every parameter
        ``lr``.
    local_kl_weight
        Optional schedule ``epoch -> weight`` of the local latent KL (``z_basal``).
    checkpoints
        Where to write resumable checkpoints: every ``checkpoints.every_steps`` steps, at
        each best validation ELBO and at the end. If it was opened on a checkpoint of
        ``phase``, training continues from there and ends as the uninterrupted run would.
    phase
        Name of this call within a run of several (``"dense"``, ``"sparse"``).
    parallel
        For data-parallel training: gradients are averaged over the processes after each
        backward pass (``train_loader`` must shard its batches with ``parallel.shard``).
    epoch_offset
        Epochs trained before this call (a dense start's), so that the progress bar and the
        messages number epochs as the combined history does.

    The bar's postfix shows the epoch it has just counted; when early stopping ends the
    phase, the bar stays with the epoch it stopped at and the best epoch, and the steps
    after the loop (restoring the best epoch, the final checkpoint) are named on it and
    logged.

    Raises
    ------
    DivergenceError
        If a loss or gradient is NaN or infinite. The parameters are first restored to the
        end of the last completed epoch, so the model stays usable; the checkpoint on disk
        is the last one written before the divergence.
    """
    weights = KLWeights()
    loss = make_loss(pair, n_particles, weights)
    exact_loss = make_loss(pair, n_particles)
    optimizer = torch.optim.Adam(parameter_groups(pair, lr, global_lr_factor))
    params = [p for group in optimizer.param_groups for p in group["params"]]
    loop = LoopState()
    best_state = last_good = snapshot(pair)
    restored = None if checkpoints is None else checkpoints.restore(phase, pair, optimizer)
    if restored is not None:
        saved_loop, best_state, last_good = restored
        loop = LoopState.from_dict(saved_loop)
        train_loader.shuffle_state = loop.loader_state
    history = loop.history

    def save() -> None:
        if checkpoints is not None:
            checkpoints.write(phase, loop.to_dict(), pair, optimizer, best_state, last_good)

    start = time.perf_counter()
    bar = tqdm(
        total=epoch_offset + max_epochs,
        desc=description,
        unit="epoch",
        disable=not progress,
        leave=False,
        mininterval=1.0,
        initial=epoch_offset + loop.epoch,
    )
    say = main_process_info(logger, parallel)
    # Argument validation would turn a NaN into a ValueError deep inside a distribution;
    # without it the NaN reaches the loss, where the divergence guard below reports it.
    with pyro.validation_enabled(False):
        for epoch in range(loop.epoch, max_epochs):
            if loop.finished:
                break
            weights.local_weight = 1.0 if local_kl_weight is None else float(local_kl_weight(epoch))
            pair.train()
            loop.loader_state = train_loader.shuffle_state
            for batch in train_loader.batches(skip=loop.batches_done):
                value = loss(batch, train_loader.n_cells)
                if not torch.isfinite(value):
                    _diverged(
                        pair,
                        last_good,
                        f"the loss became {float(value.detach())}",
                        history.steps,
                        epoch,
                    )
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                if parallel is not None:
                    parallel.average_gradients(params, len(batch))
                norm = torch.nn.utils.clip_grad_norm_(params, grad_clip or math.inf)
                if not torch.isfinite(norm):
                    _diverged(pair, last_good, "a gradient became non-finite", history.steps, epoch)
                optimizer.step()
                history.steps += 1
                loop.batches_done += 1
                loop.epoch_loss += float(value.detach()) * len(batch)
                if checkpoints is not None and checkpoints.due(history.steps):
                    save()
            epoch_loss = loop.epoch_loss if parallel is None else parallel.sum(loop.epoch_loss)
            history.train_elbo.append(-epoch_loss / train_loader.n_cells**2)
            loop.epoch, loop.batches_done, loop.epoch_loss = epoch + 1, 0, 0.0
            loop.loader_state = train_loader.shuffle_state

            pair.eval()
            if validation_loader is not None and validation_loader.n_cells > 0:
                score = estimate_elbo(exact_loss, validation_loader)
                history.validation_elbo.append(score)
            else:
                score = history.train_elbo[-1]
            last_good = snapshot(pair)
            improved = keep_best and weights.is_exact and score > _or_minus_inf(loop.best_score)
            if improved:
                loop.best_score, best_state, history.best_epoch = score, last_good, epoch
                loop.epochs_since_best = 0
                save()
            elif weights.is_exact:
                loop.epochs_since_best += 1
            # set before the bar advances, which draws it: the postfix is this epoch's
            bar.set_postfix(elbo=f"{history.train_elbo[-1]:.1f}", val=f"{score:.1f}", refresh=False)
            bar.update()
            if (
                keep_best
                and early_stopping_patience is not None
                and loop.epochs_since_best > early_stopping_patience
            ):
                history.stopped_early = True
                break
    if not loop.finished:
        say("%s: %s", description, _ending(history, loop, epoch_offset, validation_loader))
        if keep_best and history.best_epoch >= 0:
            _step(
                bar,
                description,
                f"restoring the parameters of epoch {epoch_offset + history.best_epoch}",
                say,
            )
            pair.load_state_dict(best_state)
        else:
            history.best_epoch = len(history.train_elbo) - 1
        loop.finished = True
        history.wall_time_s += time.perf_counter() - start
        if checkpoints is not None:
            _step(bar, description, "writing the final checkpoint", say)
        save()
        if history.stopped_early:
            # the bar stays, so that the run does not end in silence
            last, best = _last_and_best(history, epoch_offset)
            bar.set_description_str(
                f"{description} stopped early at epoch {last} (best epoch {best})", refresh=False
            )
            bar.leave = True
    bar.close()
    return history


def _ending(
    history: TrainingHistory,
    loop: LoopState,
    epoch_offset: int,
    validation_loader: MinibatchLoader | None,
) -> str:
    """How a phase ended, as a sentence in the epoch numbers of the combined history."""
    last, best_epoch = _last_and_best(history, epoch_offset)
    best = "" if history.best_epoch < 0 else f"; best epoch {best_epoch}"
    if not history.stopped_early:
        return f"finished at epoch {last}{best}"
    scored = (
        "validation ELBO" if validation_loader is not None and validation_loader.n_cells else "ELBO"
    )
    return (
        f"stopped early at epoch {last}: no better {scored} for {loop.epochs_since_best} "
        f"epochs{best}"
    )


def _last_and_best(history: TrainingHistory, epoch_offset: int) -> tuple[int, int]:
    """The phase's last and best epochs, numbered as in the combined history."""
    return epoch_offset + len(history.train_elbo) - 1, epoch_offset + history.best_epoch


def _step(bar: tqdm, description: str, what: str, say: Callable[..., None]) -> None:
    """Name a step after the loop on the bar and in the log."""
    say("%s: %s", description, what)
    bar.set_description_str(f"{description}: {what}")


def _or_minus_inf(value: float | None) -> float:
    return -math.inf if value is None else value


def train_with_dense_start(
    pair: nn.ModuleDict,
    train_loader: MinibatchLoader,
    validation_loader: MinibatchLoader | None,
    *,
    dense_epochs: int,
    max_epochs: int,
    basal_kl_start: float = 20.0,
    checkpoints: TrainingCheckpoints | None = None,
    **svi_options,
) -> TrainingHistory:
    """SVI for models with sparse masks: a dense phase, a sparsifying rotation, then the ELBO.

    1. ``dense_epochs`` epochs with every mask pinned to 1. During the first half of them
       the basal KL weight falls linearly from ``basal_kl_start`` to 1, so the embeddings
       capture each perturbation's mean shift before the encoder can absorb it.
    2. The latent basis is rotated to make the embeddings sparse
       (:func:`~samsvae_plus.inference.sparse_basis.rotate_to_sparse_basis`), and the masks
       are released.
    3. The remaining ``max_epochs - dense_epochs`` epochs train the exact ELBO, with
       best-validation selection and early stopping.

    With ``checkpoints``, the phases are checkpointed as ``"dense"`` and ``"sparse"`` and a
    resumed run continues in whichever phase it was stopped.
    """
    from samsvae_plus.inference.sparse_basis import rotate_to_sparse_basis

    if not 0 <= dense_epochs < max_epochs:
        raise ValueError(
            f"dense_epochs must lie in [0, max_epochs), got {dense_epochs} of {max_epochs}"
        )
    if dense_epochs == 0:
        return train_svi(
            pair,
            train_loader,
            validation_loader,
            max_epochs=max_epochs,
            checkpoints=checkpoints,
            **svi_options,
        )
    ramp = max(dense_epochs // 2, 1)

    def basal_weight(epoch: int) -> float:
        return basal_kl_start + (1.0 - basal_kl_start) * min(epoch / ramp, 1.0)

    options = {**svi_options, "checkpoints": checkpoints}
    parallel = svi_options.get("parallel")
    say = main_process_info(logger, parallel)
    finished_dense = None if checkpoints is None else checkpoints.finished_phase("dense")
    if finished_dense is None:
        epochs = "epoch" if dense_epochs == 1 else "epochs"
        say("dense start: %d %s with every mask pinned to 1", dense_epochs, epochs)
        pair["guide"].pin_masks(True)
        dense = train_svi(
            pair,
            train_loader,
            validation_loader,
            **{
                **options,
                "max_epochs": dense_epochs,
                "local_kl_weight": basal_weight,
                "keep_best": False,
            },
            description="dense start",
            phase="dense",
        )
        say("rotating the latent basis to make the embeddings sparse; masks released")
        rotate_to_sparse_basis(pair)
    else:
        # Resuming after the rotation: the sparse phase's checkpoint holds the rotated state.
        dense = TrainingHistory.from_dict(finished_dense["history"])
        pair["guide"].pin_masks(False)
    dense.dense_epochs = dense_epochs
    sparse = train_svi(
        pair,
        train_loader,
        validation_loader,
        max_epochs=max_epochs - dense_epochs,
        **options,
        phase="sparse",
        epoch_offset=dense_epochs,
    )
    return dense.extend(sparse)


def _diverged(pair: nn.Module, last_good: dict, what: str, step: int, epoch: int) -> None:
    pair.load_state_dict(last_good)
    raise DivergenceError(
        f"training diverged at step {step} (epoch {epoch}): {what}; the parameters of the "
        "last completed epoch were restored. Lower lr or set grad_clip"
    )
