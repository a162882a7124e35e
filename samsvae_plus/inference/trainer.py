"""The body of :meth:`PerturbationModel.train <samsvae_plus.model.base.PerturbationModel.train>`.

The model checks the arguments, encodes its data and hands over the Pyro pair with a
checked :class:`~samsvae_plus.inference.training_options.TrainingOptions`. Training then
runs in two calls, so that the model can keep what the first sets up before the loop
starts (a run that diverges still leaves a model with its split and statistics, which is
saved for inspection):

1. :func:`prepare`: seeds, the split, the device (and the data-parallel set-up), the
   loaders, the encoder standardisation and library-size statistics of the training cells;
2. :func:`fit`: the SVI loop (:func:`~samsvae_plus.inference.svi.train_svi`), after a dense
   start when the guide learns masks, with resumable checkpoints
   (:func:`open_checkpoints`) if asked for.

Nothing here knows a model class: what identifies the run in its checkpoints (the class
name, its configuration and its registry) comes from the caller.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from samsvae_plus.data.backed_loader import BackedLoader
from samsvae_plus.data.encode import EncodedData
from samsvae_plus.data.loaders import InMemoryLoader, MinibatchLoader, ResidentLoader
from samsvae_plus.data.splits import Split, random_split
from samsvae_plus.data.transforms import encoder_input_statistics_of_blocks
from samsvae_plus.errors import InputError
from samsvae_plus.inference.data_parallel import DataParallel, main_process_info
from samsvae_plus.inference.svi import (
    TrainingHistory,
    scaled_learning_rate,
    train_svi,
    train_with_dense_start,
)
from samsvae_plus.inference.training_checkpoints import TrainingCheckpoints, digest
from samsvae_plus.inference.training_options import TrainingOptions
from samsvae_plus.module.distributions import compiled_kernels
from samsvae_plus.nn.encoders import ExpressionStandardizer
from samsvae_plus.settings import resolve_device, seed_everything

logger = logging.getLogger(__name__)

# "auto" keeps a data set on the GPU when its CSR arrays take at most this share of the
# free device memory; the rest is left to activations and the optimizer.
RESIDENT_SHARE = 0.5
LOADER_CLASSES = {"memory": InMemoryLoader, "resident": ResidentLoader, "backed": BackedLoader}


def learns_masks(pair: nn.ModuleDict) -> bool:
    """Whether the pair's guide learns sparse masks (and so trains after a dense start)."""
    return getattr(pair["guide"], "learns_masks", False)


def dense_phase_epochs(options: TrainingOptions) -> int:
    """Epochs of the dense start: ``dense_epochs``, by default two fifths of ``max_epochs``.

    A long dense phase matters: the embeddings must converge before the rotation (on the
    demo simulation, 60 of 150 epochs gave F1 >= 0.98 on five seeds, where 40 of 120 gave
    0.73 on one of them).
    """
    if options.dense_epochs is None:
        return 2 * options.max_epochs // 5
    return options.dense_epochs


@dataclass
class PreparedRun:
    """Everything :func:`prepare` sets up for :func:`fit`, and what the model keeps of it."""

    split: Split
    device: torch.device
    train_loader: MinibatchLoader
    validation_loader: MinibatchLoader
    library_stats: dict[str, list[float]]
    trained_by_context: np.ndarray  # contexts x actions: had training cells in the context
    parallel: DataParallel | None
    backed: bool


def prepare(
    pair: nn.ModuleDict,
    data: EncodedData,
    options: TrainingOptions,
    *,
    split: Split | None,
    n_contexts: int,
    parallel: DataParallel | None,
) -> PreparedRun:
    """Seed, split, place ``pair`` on its device and fit the data statistics.

    Parameters
    ----------
    pair
        The ``"model"`` and ``"guide"`` to train; moved to the device, and its
        :class:`~samsvae_plus.nn.encoders.ExpressionStandardizer` modules get the training
        cells' statistics.
    data
        The encoded cells; with ``options.loader == "backed"`` the counts stay on disk.
    options
        Checked options with a seed (``options.seed`` is not None).
    split
        Which cells to train and validate on; by default a random ``split_fractions``
        split seeded by ``options.seed``.
    n_contexts
        Contexts of the registry, for the per-context library-size statistics.
    parallel
        The data-parallel process group, or None.
    """
    seed_everything(options.seed)
    if split is None:
        split = random_split(data.n_cells, options.split_fractions, seed=options.seed)
    device = resolve_device(options.device) if parallel is None else parallel.device()
    pair.to(device)
    if parallel is not None:
        parallel.broadcast_parameters(pair)
        # the minibatch order (numpy, seeded above) is shared; the particles are not
        torch.manual_seed(parallel.sampling_seed(options.seed))
    backed = options.loader == "backed"
    loader = _resolved_loader(
        options.loader, data, np.concatenate([split.train, split.validation]), device
    )
    make_loader = LOADER_CLASSES[loader]
    shard = {} if parallel is None else {"shard": parallel.shard}
    train_loader = make_loader(
        data, split.train, batch_size=options.batch_size, seed=options.seed, device=device, **shard
    )
    validation_loader = make_loader(
        data, split.validation, batch_size=options.batch_size, shuffle=False, device=device
    )
    say = main_process_info(logger, parallel)
    say(
        "training on %d cells (%d for validation, %d held out) on %s, with the %s loader",
        len(split.train),
        len(split.validation),
        len(split.test),
        device,
        loader,
    )
    say("computing the encoder's input and library-size statistics of the training cells")
    _standardise_encoders(pair, data, split.train, train_loader if backed else None)
    return PreparedRun(
        split=split,
        device=device,
        train_loader=train_loader,
        validation_loader=validation_loader,
        library_stats=library_statistics(data, split.train, n_contexts),
        trained_by_context=trained_in_contexts(data, split.train, n_contexts),
        parallel=parallel,
        backed=backed,
    )


def trained_in_contexts(data: EncodedData, cells: np.ndarray, n_contexts: int) -> np.ndarray:
    """Contexts x actions: which actions have any of ``cells`` in which context."""
    dosage, contexts = data.dosage[cells], np.asarray(data.context)[cells]
    return np.stack(
        [np.asarray(dosage[contexts == c].sum(axis=0)).ravel() > 0 for c in range(n_contexts)]
    )


def fit(
    pair: nn.ModuleDict,
    run: PreparedRun,
    options: TrainingOptions,
    *,
    checkpoints: TrainingCheckpoints | None = None,
) -> TrainingHistory:
    """Train ``pair`` on the prepared run: a dense start first when its guide learns masks.

    Returns the history; the parameters end at the best validation ELBO.
    """
    parallel = run.parallel
    svi_options = dict(
        **loop_settings(options),
        progress=options.progress and (parallel is None or parallel.is_main),
        parallel=parallel,
        checkpoints=checkpoints,
    )
    with compiled_kernels(bool(options.compile_kernels)):
        if learns_masks(pair):
            return train_with_dense_start(
                pair,
                run.train_loader,
                run.validation_loader,
                dense_epochs=dense_phase_epochs(options),
                max_epochs=options.max_epochs,
                **svi_options,
            )
        return train_svi(
            pair,
            run.train_loader,
            run.validation_loader,
            max_epochs=options.max_epochs,
            **svi_options,
        )


def loop_settings(options: TrainingOptions) -> dict:
    """The options the SVI loop reads, the learning rate scaled to the batch size."""
    return dict(
        lr=scaled_learning_rate(options.lr, options.batch_size, options.lr_scaling),
        global_lr_factor=options.global_lr_factor,
        n_particles=options.n_particles,
        early_stopping_patience=options.early_stopping_patience,
        grad_clip=options.grad_clip,
    )


def open_checkpoints(
    directory: str | os.PathLike,
    *,
    resume: bool,
    options: TrainingOptions,
    run: PreparedRun,
    pair: nn.ModuleDict,
    identity: dict,
) -> TrainingCheckpoints:
    """The run's checkpoints, opened for resuming; refuses to overwrite another run's.

    The fingerprint that a resumed run must match is the model's ``identity`` (its class
    name, configuration and registry, as JSON), digests of the registry and the split, and
    every setting that shapes the run; the keys and values are those checkpoints always
    held, so that older ones still resume.
    """
    fingerprint = {
        "class": identity["class"],
        "config": identity["config"],
        "registry": digest(identity["registry"]),
        "split": digest(run.split.to_dict()),
        **loop_settings(options),
        "progress": options.progress,
        "parallel": None,
        "max_epochs": options.max_epochs,
        "batch_size": options.batch_size,
        "seed": options.seed,
        "dense_epochs": dense_phase_epochs(options) if learns_masks(pair) else None,
        # the backed loader draws another order; older checkpoints lack the key
        **({"loader": "backed"} if run.backed else {}),
    }
    checkpoints = TrainingCheckpoints(
        directory, every_steps=options.checkpoint_every, fingerprint=fingerprint
    )
    if not resume and checkpoints.exists():
        raise InputError(
            f"{directory} already holds a training checkpoint; pass resume=True to "
            "continue it, or choose another checkpoint directory"
        )
    if resume:
        checkpoints.open()
    return checkpoints


def library_statistics(
    data: EncodedData, train_rows: np.ndarray, n_contexts: int
) -> dict[str, list[float]]:
    """Mean and standard deviation of the log library size of the training cells, per
    context (over all training cells for a context without any)."""
    log_library = np.log(data.library_size[train_rows])
    contexts = data.context[train_rows]
    overall = (float(log_library.mean()), float(log_library.std()))
    stats = [
        (float(log_library[contexts == c].mean()), float(log_library[contexts == c].std()))
        if (contexts == c).any()
        else overall
        for c in range(n_contexts)
    ]
    return {"log_mean": [s[0] for s in stats], "log_sd": [s[1] for s in stats]}


def _standardise_encoders(
    pair: nn.ModuleDict,
    data: EncodedData,
    train_rows: np.ndarray,
    backed: BackedLoader | None = None,
) -> None:
    """Encoder standardisation from the training cells only; read chunk by chunk through
    ``backed`` when the counts are on disk."""
    if backed is None:
        blocks = [(data.counts[train_rows], data.library_size[train_rows])]
    else:
        blocks = ((counts, data.library_size[rows]) for rows, counts in backed.row_blocks())
    mean, std = encoder_input_statistics_of_blocks(blocks)
    for module in pair.modules():
        if isinstance(module, ExpressionStandardizer):
            module.set_statistics(mean, std)


def _resolved_loader(loader: str, data: EncodedData, rows: np.ndarray, device: torch.device) -> str:
    """The loader ``loader`` names: ``"auto"`` keeps the cells on a CUDA device when they
    fit (:data:`RESIDENT_SHARE`), else slices them on the host per batch."""
    if loader == "auto":
        fits = (
            device.type == "cuda"
            and ResidentLoader.device_bytes(data, rows)
            <= RESIDENT_SHARE * torch.cuda.mem_get_info(device)[0]
        )
        loader = "resident" if fits else "memory"
    return loader
