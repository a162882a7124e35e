"""The user-facing model classes: they own the AnnData and join data, models and inference.

:class:`PerturbationModel` holds everything the family shares: registration, training
through the one SVI loop (:mod:`~samsvae_plus.inference.trainer`), posterior-predictive
sampling, treatment effects, saving and loading. A subclass names its configuration (a
dataclass of :mod:`samsvae_plus.module.config`, which also gives its constructor's keyword
arguments) and says how to build its Pyro model and guide from it.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import anndata as ad
import numpy as np
import pandas as pd
import torch
from torch import nn

from samsvae_plus.data import validate
from samsvae_plus.data.checked import (
    CheckedCells,
    CheckedConditions,
    check_cells,
    check_model_data,
    check_requested_conditions,
)
from samsvae_plus.data.device_csr import GrowingCSR, to_host_csr
from samsvae_plus.data.encode import action_names, context_ids, encode
from samsvae_plus.data.loaders import Batch, make_batch
from samsvae_plus.data.registry import Registry, get_registry
from samsvae_plus.data.splits import Split
from samsvae_plus.data.transforms import ATE_TARGET_SUM
from samsvae_plus.errors import InputError, check_choice
from samsvae_plus.evaluate.ate import CONDITION_LEVEL, CONTEXT_LEVEL
from samsvae_plus.inference import posterior, trainer
from samsvae_plus.inference.data_parallel import DataParallel
from samsvae_plus.inference.model_files import load_model_dir, save_model_dir, write_model_files
from samsvae_plus.inference.predictive_ate import context_ate_draws
from samsvae_plus.inference.svi import TrainingHistory
from samsvae_plus.inference.training_options import LOADERS, LR_SCALINGS, TrainingOptions
from samsvae_plus.model.evaluation import EvaluationVerbs
from samsvae_plus.model.prediction_output import (
    FACTUAL_SOURCES,
    factual_rows,
    output_adata,
    run_record,
    source_cell_obs,
    with_categories,
)
from samsvae_plus.model.representation import RepresentationVerbs
from samsvae_plus.module.config import ModelConfig, field_default
from samsvae_plus.settings import resolve_device, seeded, settings

# Parameters are initialised from this seed, so that train(seed=...) alone fixes a run.
INIT_SEED = 0


def _check_loader(adata: ad.AnnData, loader: str) -> str:
    """``train(loader=...)`` validated against the AnnData, before any work."""
    if loader not in LOADERS:
        raise InputError(f"loader must be one of {LOADERS}, got {loader!r}")
    if loader == "backed" and not adata.isbacked:
        raise InputError(
            "loader='backed' needs an AnnData opened from a file with "
            "anndata.read_h5ad(path, backed='r'); pass loader='memory' or 'auto'"
        )
    return "backed" if loader == "auto" and adata.isbacked else loader


def constructor_signature(
    config_class: type[ModelConfig], positional: Sequence[str]
) -> inspect.Signature:
    """``(adata, <positional>, *, <the other options>)``, each option with its
    configuration default: the signature of a user class built from ``config_class``."""
    options = {f.name: f for f in config_class.argument_fields()}
    kind = inspect.Parameter
    parameters = [kind("adata", kind.POSITIONAL_OR_KEYWORD, annotation="ad.AnnData")]
    for name in [*positional, *(n for n in options if n not in positional)]:
        f = options[name]
        parameters.append(
            kind(
                name,
                kind.POSITIONAL_OR_KEYWORD if name in positional else kind.KEYWORD_ONLY,
                default=field_default(f),
                annotation=f.type,
            )
        )
    return inspect.Signature(parameters, return_annotation="None")


class PerturbationModel(EvaluationVerbs, RepresentationVerbs):
    """Shared base of SAMS-VAE and its relatives (see :mod:`samsvae_plus.model.family`).

    A subclass sets ``CONFIG``, its configuration class: the constructor takes ``adata``
    and the configuration's fields as keyword arguments (the first ``POSITIONAL`` of them
    also by position), and ``model.config`` is the checked configuration, which ``save``
    writes. It implements :meth:`_build`, which returns an ``nn.ModuleDict`` with a Pyro
    ``"model"`` and ``"guide"`` of one signature ``(batch, n_cells)``; the guide has a
    ``sample_globals()`` and the model observes counts at ``"x"`` inside the ``"cells"``
    plate. Other class attributes describe the rest:

    - ``ACTIONS``: dosage columns, ``"genes"`` (``A+B`` adds ``A`` and ``B``) or
      ``"conditions"`` (each condition its own action);
    - ``HAS_EFFECT_PRIOR``: whether a perturbation without training cells can be predicted
      from the prior (masks and embeddings have one) or not (point estimates, decoder
      inputs);
    - ``LATENT_SHIFT``: whether perturbations shift the latent state (``z = z_basal +
      shift``) or enter the decoder (no shift: ``get_latent_representation`` gives only
      the basal state).

    A class defined with ``register=True`` (``class MyModel(PerturbationModel,
    register=True)``) can be loaded by name through :meth:`load`; names are unique, since
    a saved model records only its class name.
    """

    ACTIONS: ClassVar[str] = "genes"
    HAS_EFFECT_PRIOR: ClassVar[bool] = True
    CONFIG: ClassVar[type[ModelConfig]] = ModelConfig
    POSITIONAL: ClassVar[tuple[str, ...]] = ()
    _classes: ClassVar[dict[str, type[PerturbationModel]]] = {}

    def __init_subclass__(cls, *, register: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__signature__ = constructor_signature(cls.CONFIG, cls.POSITIONAL)
        if register:
            known = PerturbationModel._classes.get(cls.__name__)
            # the same class defined again (a reloaded module) replaces itself
            if known is not None and _qualified_name(known) != _qualified_name(cls):
                raise TypeError(
                    f"a model class named {cls.__name__!r} is registered already "
                    f"({_qualified_name(known)}); saved models name their class, so give "
                    f"{_qualified_name(cls)} another name"
                )
            PerturbationModel._classes[cls.__name__] = cls

    def __init__(self, adata: ad.AnnData, *args: Any, **options: Any) -> None:
        arguments = dict(inspect.signature(type(self)).bind(adata, *args, **options).arguments)
        del arguments["adata"]
        config = self.CONFIG.from_arguments(**arguments)
        registry = get_registry(adata)
        config, inputs = self._resolve(registry, config)
        self._setup(registry, config, adata, inputs)

    def _resolve(self, registry: Registry, config: ModelConfig) -> tuple[ModelConfig, Any]:
        """The configuration to keep and the inputs to build from, once files it names are
        read (for the family: gene embeddings, pretrained weights). A loaded or copied
        model builds without such inputs and takes their values from its saved state."""
        return config, None

    def _setup(
        self,
        registry: Registry,
        config: ModelConfig,
        adata: ad.AnnData | None,
        inputs: Any = None,
    ) -> None:
        """The one way a model comes to be: new, loaded or copied."""
        self.registry = registry
        self.adata = adata
        self.config = config
        with seeded(INIT_SEED):
            self.module: nn.ModuleDict = self._build(registry, config, inputs)
        self.history: TrainingHistory | None = None
        self.split: Split | None = None
        self.library_stats: dict[str, list[float]] | None = None
        self.trained_actions: np.ndarray | None = None
        # contexts x actions with training cells: the population an unseen action is drawn from
        self.trained_by_context: np.ndarray | None = None
        self.device = torch.device("cpu")

    def _build(self, registry: Registry, config: ModelConfig, inputs: Any) -> nn.ModuleDict:
        raise NotImplementedError

    def untrained_copy(self) -> PerturbationModel:
        """An untrained model of this class, configuration and data, initialised as a new
        one would be; its buffers (constants such as a gene-embedding prior's inputs) are
        this model's."""
        copy = type(self).__new__(type(self))
        copy._setup(self.registry, self.config, self.adata)
        buffers = dict(self.module.named_buffers())
        for name, buffer in copy.module.named_buffers():
            buffer.copy_(buffers[name])
        return copy

    def __repr__(self) -> str:
        state = "trained" if self.is_trained else "untrained"
        return (
            f"{type(self).__name__}({state}; {self.registry.n_genes} genes, "
            f"{len(self.actions)} {self.ACTIONS[:-1]} actions, {self.registry.n_contexts} contexts, "
            f"config={self.config.to_dict()})"
        )

    @property
    def actions(self) -> tuple[str, ...]:
        """Names of the dosage columns: perturbed genes, or conditions (see ``ACTIONS``)."""
        return action_names(self.registry, self.ACTIONS)

    @property
    def is_trained(self) -> bool:
        return self.library_stats is not None

    def _require_trained(self) -> None:
        if not self.is_trained:
            raise InputError(
                f"the {type(self).__name__} is not trained yet; call model.train() first"
            )

    def _require_adata(self) -> ad.AnnData:
        if self.adata is None:
            raise InputError(
                "this model was loaded without data; pass adata= to load() to train it"
            )
        return self.adata

    # ------------------------------------------------------------------ training
    def train(
        self,
        max_epochs: int = TrainingOptions.max_epochs,
        batch_size: int = TrainingOptions.batch_size,
        n_particles: int = TrainingOptions.n_particles,
        lr: float = TrainingOptions.lr,
        device: str | torch.device = TrainingOptions.device,
        seed: int | None = TrainingOptions.seed,
        *,
        split: Split | None = None,
        split_fractions: tuple[float, float, float] = TrainingOptions.split_fractions,
        dense_epochs: int | None = TrainingOptions.dense_epochs,
        global_lr_factor: float = TrainingOptions.global_lr_factor,
        early_stopping_patience: int | None = TrainingOptions.early_stopping_patience,
        grad_clip: float | None = TrainingOptions.grad_clip,
        progress: bool = TrainingOptions.progress,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int = TrainingOptions.checkpoint_every,
        resume: bool = False,
        distributed: bool = False,
        loader: str = TrainingOptions.loader,
        lr_scaling: str | None = TrainingOptions.lr_scaling,
        compile_kernels: bool = TrainingOptions.compile_kernels,
    ) -> TrainingHistory:
        """Fit the model by SVI on the registered AnnData.

        Parameters
        ----------
        max_epochs
            Upper bound on passes over the training cells, dense start included.
        batch_size
            Cells per step.
        n_particles
            Vectorized ELBO particles per step.
        lr
            Adam learning rate of the networks and point estimates, at 512 cells per step
            when ``lr_scaling`` is set.
        device
            ``"auto"`` picks CUDA when present.
        seed
            Seeds the split, the minibatch order and every sample; by default
            ``sp.settings.seed`` if set, else 0. With the same seed, on the same machine and
            versions, the parameters are bitwise the same on CPU.
        split
            Which cells to train and validate on; by default a random ``split_fractions``
            split of all cells, seeded by ``seed``. Saved with the model.
        dense_epochs
            For models with sparse masks: epochs with the masks pinned to 1 before the
            latent basis is rotated to make the effects sparse
            (:func:`~samsvae_plus.inference.svi.train_with_dense_start`); by default
            two fifths of ``max_epochs``. 0 starts from random masks.
        global_lr_factor
            Learning rate of the guide's per-perturbation parameters (mask logits,
            embedding means and scales) relative to ``lr``.
        early_stopping_patience
            Epochs without a better validation ELBO before stopping; ``None`` never stops.
        grad_clip
            Optional bound on the gradient norm.
        progress
            Show a progress bar with the ELBO.
        checkpoint_dir
            Directory for resumable checkpoints (model, guide, optimizer and generator
            states), written atomically every ``checkpoint_every`` steps, at each best
            validation ELBO and at the end of each phase. It must not hold a checkpoint
            already unless ``resume`` is set.
        checkpoint_every
            Optimizer steps between checkpoints.
        resume
            Continue from the checkpoint in ``checkpoint_dir`` (start afresh if there is
            none). Called with the same arguments, a run killed at any point and resumed
            ends with the same parameters as an uninterrupted one on CPU. ``lr``,
            ``grad_clip`` and ``early_stopping_patience`` may change on resume, for example
            to recover from a divergence; everything else must match.
        distributed
            Data-parallel training in a ``torch.distributed`` process group (launch one
            process per device with ``torchrun``; see
            :mod:`~samsvae_plus.inference.data_parallel`). ``batch_size`` is the global
            batch, split between the processes; every process ends with the same
            parameters. Save from rank 0 only.
        loader
            ``"memory"`` holds the counts in host memory and copies each batch to the
            device (as CSR, densified there); ``"resident"`` copies the training and
            validation cells to the device once, as CSR, and gathers each batch there
            (:class:`~samsvae_plus.data.loaders.ResidentLoader`; the same batches as
            ``"memory"``); ``"backed"`` reads the counts from the file of an AnnData
            opened with ``anndata.read_h5ad(path, backed="r")``, in contiguous chunks
            shuffled within a window of a few chunks, so memory stays bounded
            (:class:`~samsvae_plus.data.backed_loader.BackedLoader`). ``"auto"`` picks
            ``"backed"`` for a backed AnnData, ``"resident"`` on a CUDA device when the
            cells take at most half of its free memory, and ``"memory"`` otherwise.
        lr_scaling
            For large batches: ``"sqrt"`` multiplies ``lr`` (and the per-perturbation
            rates) by ``sqrt(batch_size / 512)``, ``"linear"`` by ``batch_size / 512``
            (:func:`~samsvae_plus.inference.svi.scaled_learning_rate`); ``None`` uses ``lr``
            as given.
        compile_kernels
            Run the fused NB log-probability through ``torch.compile``
            (:func:`~samsvae_plus.module.distributions.compiled_kernels`): a few seconds to
            compile once per process, then one generated kernel per direction. Results
            agree with the eager kernel to float rounding, not bitwise.

        Returns
        -------
        TrainingHistory
            Also kept as ``model.history``.

        Raises
        ------
        DivergenceError
            When a loss or gradient becomes NaN or infinite; the message names the step,
            the parameters of the last completed epoch are restored, and the last
            checkpoint on disk is kept.
        """
        adata = self._require_adata()
        max_epochs = validate.check_positive_int(max_epochs, "max_epochs")
        batch_size = validate.check_positive_int(batch_size, "batch_size")
        n_particles = validate.check_positive_int(n_particles, "n_particles")
        lr = validate.check_positive_number(lr, "lr")
        check_choice("lr_scaling", lr_scaling, LR_SCALINGS)
        if seed is None:
            seed = 0 if settings.seed is None else settings.seed
        seed = validate.check_seed(seed)
        global_lr_factor = validate.check_positive_number(global_lr_factor, "global_lr_factor")
        if early_stopping_patience is not None:
            validate.check_positive_int(early_stopping_patience, "early_stopping_patience")
        if grad_clip is not None:
            grad_clip = validate.check_positive_number(grad_clip, "grad_clip")
        validate.check_device(device)
        if trainer.learns_masks(self.module) and dense_epochs is not None:
            validate.check_dense_epochs(dense_epochs, max_epochs)
        if resume and checkpoint_dir is None:
            raise InputError("resume=True needs checkpoint_dir, the directory of the checkpoints")
        checkpoint_every = validate.check_positive_int(checkpoint_every, "checkpoint_every")
        loader = _check_loader(adata, loader)
        parallel = DataParallel.from_environment() if distributed else None
        if parallel is not None and (checkpoint_dir is not None or loader == "backed"):
            raise InputError(
                "distributed=True does not support checkpoint_dir or a backed AnnData yet; "
                "train without one of them"
            )
        options = TrainingOptions(
            max_epochs=max_epochs,
            batch_size=batch_size,
            n_particles=n_particles,
            lr=lr,
            lr_scaling=lr_scaling,
            dense_epochs=dense_epochs,
            global_lr_factor=global_lr_factor,
            early_stopping_patience=early_stopping_patience,
            grad_clip=grad_clip,
            split_fractions=split_fractions,
            loader=loader,
            compile_kernels=compile_kernels,
            checkpoint_every=checkpoint_every,
            device=device,
            seed=seed,
            progress=progress,
        )
        data = encode(
            check_cells(adata, self.registry, actions=self.ACTIONS), load_counts=loader != "backed"
        )
        run = trainer.prepare(
            self.module,
            data,
            options,
            split=split,
            n_contexts=self.registry.n_contexts,
            parallel=parallel,
        )
        self.split, self.device = run.split, run.device
        self.library_stats, self.trained_by_context = run.library_stats, run.trained_by_context
        self.trained_actions = run.trained_by_context.any(axis=0)
        checkpoints = None
        if checkpoint_dir is not None:
            checkpoints = trainer.open_checkpoints(
                checkpoint_dir,
                resume=resume,
                options=options,
                run=run,
                pair=self.module,
                identity={
                    "class": type(self).__name__,
                    "config": self.config.to_dict(),
                    "registry": self.registry.to_dict(),
                },
            )
        self.history = trainer.fit(self.module, run, options, checkpoints=checkpoints)
        return self.history

    # ------------------------------------------------------------------ posterior
    def mask_probabilities(self) -> pd.DataFrame:
        """Posterior probabilities ``q(m_tk = 1)``: actions x latent dimensions.

        Actions without training cells show their prior probability, which is what
        predictions for them use.
        """
        guide = self.module["guide"]
        if not hasattr(guide, "mask_probabilities"):
            raise InputError(f"{type(self).__name__} has no sparse masks")
        with torch.no_grad():
            probs = guide.mask_probabilities().detach().clone()
            untrained = self._untrained()
            if untrained is not None and guide.learns_masks:
                probs[untrained] = self.module["model"].prior_mask_probabilities()[untrained]
        columns = [f"z{k}" for k in range(probs.shape[1])]
        return pd.DataFrame(
            probs.cpu().numpy(), index=pd.Index(self.actions, name="perturbation"), columns=columns
        )

    def _untrained(self) -> torch.Tensor | None:
        """Actions without training cells, as a device tensor, or None when all had cells."""
        if self.trained_actions is None or self.trained_actions.all():
            return None
        return torch.as_tensor(~self.trained_actions, device=self.device)

    def _population(self) -> torch.Tensor | None:
        """Contexts x actions with training cells, as a device tensor (see
        :func:`~samsvae_plus.inference.posterior.population_dosage`), or None when every
        action had cells. A model saved before this table existed uses its
        ``trained_actions`` in every context."""
        if self._untrained() is None:
            return None
        table = self.trained_by_context
        if table is None:
            table = np.tile(self.trained_actions, (self.registry.n_contexts, 1))
        return torch.as_tensor(table, device=self.device)

    def _global_draw(self):
        """One draw of the globals: the guide for trained actions, the prior for the rest."""
        return posterior.global_draw(self.module["guide"], self.module["model"], self._untrained())

    def _draw_context(self) -> dict:
        """What every function drawing globals for this model needs besides the pair."""
        return {"actions": self.ACTIONS, "population": self._population()}

    def _conditions(
        self, perturbations: Sequence[str] | None, **options: bool
    ) -> CheckedConditions:
        """The requested conditions, checked once (see
        :func:`~samsvae_plus.data.checked.check_requested_conditions`, which takes
        ``options``), and refused where this model has no prior for an action without
        training cells."""
        conditions = check_requested_conditions(
            perturbations, self.registry, self.ACTIONS, **options
        )
        if not self.HAS_EFFECT_PRIOR and self.trained_actions is not None:
            unseen = np.asarray(conditions.dosage[:, ~self.trained_actions].sum(axis=1)).ravel() > 0
            if unseen.any():
                example = np.asarray(conditions.labels)[unseen][0]
                raise InputError(
                    f"{type(self).__name__} has no prior over perturbation effects, so it cannot "
                    f"predict {example!r}, which had no training cells; use SAMSVAE or CPAVAE"
                )
        return conditions

    def _dosage_tensor(self, conditions: CheckedConditions) -> torch.Tensor:
        return torch.from_numpy(conditions.dosage.toarray())

    def _output_adata(self, counts: GrowingCSR, obs: pd.DataFrame) -> ad.AnnData:
        obs.index = pd.Index([f"cell{i}" for i in range(len(obs))])
        return ad.AnnData(
            X=counts.to_csr(),
            obs=with_categories(obs),
            var=pd.DataFrame(index=pd.Index(self.registry.genes)),
        )

    def _prediction_conditions(
        self, perturbations: Sequence[str] | None, include_control: bool
    ) -> CheckedConditions:
        """The conditions ``predict`` and ``get_normalized_expression`` produce: requested
        labels matched to the training labels
        (:func:`~samsvae_plus.data.checked.match_training_labels`), with the control added
        after them when ``include_control`` (by default: the control, then every condition
        seen in training)."""
        check_choice("include_control", include_control, (True, False))
        return self._conditions(
            perturbations,
            with_control=include_control,
            match_training=True,
            add_control=include_control,
        )

    def _source_cells(self, adata_controls: ad.AnnData) -> CheckedCells:
        """The cells a prediction starts from; cells without condition labels are read as
        controls."""
        return check_cells(
            adata_controls,
            self.registry,
            actions=self.ACTIONS,
            unlabelled_as_control=True,
            where="adata_controls",
        )

    @torch.no_grad()
    def predict(
        self,
        adata_controls: ad.AnnData,
        perturbations: Sequence[str] | None = None,
        *,
        n_draws: int = 1,
        seed: int = 0,
        batch_size: int = 1024,
        include_control: bool = True,
        factual: str = "observed",
    ) -> ad.AnnData:
        """Counterfactual transcriptomes: the given cells, as if each perturbation had been applied.

        Each cell's basal state is inferred by the guide from its real counts (with its own
        dosage, if ``adata_controls`` carries perturbation labels; otherwise as a control),
        the dosage is replaced by the target's, and counts are sampled with the cell's
        library size.

        Parameters
        ----------
        adata_controls
            Cells with the model's genes, usually control cells.
        perturbations
            Condition labels to apply (``"A"``, ``"A+B"``; combinations of seen genes are
            allowed); by default the control and every condition seen in training, so
            that the output can go straight into a scorer. Labels are written as the
            training data writes them: ``"MAP2K6+KLF1"`` becomes ``"KLF1+MAP2K6"`` where
            training has that label, and a combination never seen has its genes sorted
            (:func:`~samsvae_plus.data.checked.match_training_labels`); a label given
            twice is predicted once.
        n_draws
            Posterior draws of the global latents; each gives one copy of every cell.
        seed
            Seed of the sampling.
        batch_size
            Source cells encoded at a time.
        include_control
            Add the control label, after the requested ones, when ``perturbations`` lacks
            it: scorers compare each perturbation with the prediction's own control cells.
        factual
            What a cell gets for its own condition (a control cell for the control label):
            ``"observed"`` keeps its observed counts, ``"model"`` samples them like any other
            condition. That outcome is a fact, not a counterfactual: abduction reads the
            basal state from those very counts, so the model can only add its sampling
            noise to them. The draws of every other row are the same either way.

        Returns
        -------
        AnnData
            Counts in ``X``; ``obs`` has the condition label (under the registry's
            perturbation key), ``control_cell`` (the source cell), ``draw`` and the
            context; cells are named ``SOURCE_CONDITION_DRAW``, ``var`` is
            ``adata_controls.var``, and ``uns["samsvae_plus_prediction"]`` records the
            model class, package version, seed, draws and ``factual``.
        """
        self._require_trained()
        n_draws = validate.check_positive_int(n_draws, "n_draws")
        batch_size = validate.check_positive_int(batch_size, "batch_size")
        seed = validate.check_seed(seed)
        check_choice("factual", factual, FACTUAL_SOURCES)
        conditions = self._prediction_conditions(perturbations, include_control)
        cells = self._source_cells(adata_controls)
        data = encode(cells)
        labels = list(conditions.labels)
        observed = factual_rows(cells, labels) if factual == "observed" else None
        targets = self._dosage_tensor(conditions).to(self.device)
        population = self._population()
        model, guide = self.module["model"], self.module["guide"]
        # Each block is made sparse as soon as it is drawn: memory follows the non-zeros.
        blocks: dict[tuple[int, int], GrowingCSR] = {}
        with seeded(seed):
            for d in range(n_draws):
                globals_trace = self._global_draw()
                for start in range(0, data.n_cells, batch_size):
                    rows = np.arange(start, min(start + batch_size, data.n_cells))
                    batch = make_batch(data, rows, rows - start, self.device)
                    latents = posterior.encode_basal(guide, globals_trace, batch)
                    for j, target in enumerate(targets):
                        dosage = posterior.population_dosage(
                            target.expand_as(batch.dosage), batch.context, population
                        )
                        # drawn even where the observed counts replace them, so that the
                        # random stream, and every other row, is the same for both choices
                        counts = posterior.sample_counts(
                            model, latents, replace(batch, dosage=dosage)
                        )
                        if observed is not None and observed[rows, j].any():
                            own = torch.from_numpy(observed[rows, j]).to(self.device)
                            counts[own] = batch.counts[own]
                        blocks.setdefault((d, j), GrowingCSR(self.registry.n_genes)).append(
                            to_host_csr(counts)
                        )
        # one matrix in (draw, condition) order; each part is released once moved
        counts = GrowingCSR(self.registry.n_genes)
        for d in range(n_draws):
            for j in range(len(labels)):
                counts.extend(blocks.pop((d, j)))
        record = run_record(self, "predict", seed=seed, n_draws=n_draws, factual=factual)
        return output_adata(
            counts.to_csr(), source_cell_obs(cells, labels, n_draws), adata_controls, record
        )

    def _context_ids(self, context: str | None) -> list[int]:
        if context is None:
            return list(range(self.registry.n_contexts))
        validate.check_context_request(context, self.registry.contexts)
        return [int(context_ids([context], self.registry)[0])]

    @torch.no_grad()
    def sample(
        self,
        perturbations: Sequence[str] | None = None,
        n_cells: int = 100,
        context: str | None = None,
        *,
        library_size: float | None = None,
        n_draws: int = 1,
        seed: int = 0,
        batch_size: int = 1024,
    ) -> ad.AnnData:
        """Cells drawn from the generative model: basal states from the prior, then perturbed.

        Parameters
        ----------
        perturbations
            Condition labels (the control label gives unperturbed cells); by default the
            control and every condition seen in training.
        n_cells
            Cells per condition and draw.
        context
            Context (cell type) of the basal states; by default cells are spread evenly
            over the training contexts.
        library_size
            Fixed library size; by default drawn from a log-normal fitted to the training
            cells of the context.
        n_draws
            Posterior draws of the global latents.
        seed
            Seed of the sampling.
        batch_size
            Cells drawn at a time; each block is stored sparse at once, so memory grows
            with the non-zeros of the output, not with its dense size.
        """
        self._require_trained()
        n_cells = validate.check_positive_int(n_cells, "n_cells")
        batch_size = validate.check_positive_int(batch_size, "batch_size")
        n_draws = validate.check_positive_int(n_draws, "n_draws")
        seed = validate.check_seed(seed)
        if library_size is not None:
            # A library size is a cell's total count, so it obeys the counts' int32 bound.
            library_size = validate.check_positive_number(
                library_size, "library_size", at_most=validate.INT32_MAX
            )
        conditions = self._conditions(perturbations, with_control=True)
        ids = self._context_ids(context)
        contexts = np.asarray(ids)[np.arange(n_cells) % len(ids)]
        targets = self._dosage_tensor(conditions).to(self.device)
        population = self._population()
        model = self.module["model"]
        if library_size is None:
            log_mean = torch.tensor(self.library_stats["log_mean"])[contexts]
            log_sd = torch.tensor(self.library_stats["log_sd"])[contexts]
        counts = GrowingCSR(self.registry.n_genes)
        with seeded(seed):
            for _ in range(n_draws):
                globals_trace = self._global_draw()
                for target in targets:
                    for start in range(0, n_cells, batch_size):
                        cells = slice(start, min(start + batch_size, n_cells))
                        n = cells.stop - start
                        if library_size is None:
                            library = torch.exp(log_mean[cells] + log_sd[cells] * torch.randn(n))
                        else:
                            library = torch.full((n,), float(library_size))
                        context = torch.from_numpy(contexts[cells]).to(self.device)
                        batch = Batch(
                            counts=None,
                            dosage=posterior.population_dosage(
                                target.expand(n, -1), context, population
                            ),
                            library_size=library.float().to(self.device),
                            context=context,
                            index=torch.arange(n, device=self.device),
                        )
                        trace = posterior.trace_prior(model, globals_trace, batch)
                        counts.append(to_host_csr(trace.nodes["x"]["value"]))
        labels = list(conditions.labels)
        obs = pd.DataFrame(
            {
                self.registry.perturbation_key: np.repeat(np.tile(labels, n_draws), n_cells),
                "draw": np.repeat(np.arange(n_draws), n_cells * len(labels)),
            }
        )
        if self.registry.context_key is not None:
            obs[self.registry.context_key] = np.tile(
                np.asarray(self.registry.contexts)[contexts], n_draws * len(labels)
            )
        return self._output_adata(counts, obs)

    def average_treatment_effect(
        self,
        perturbations: Sequence[str] | None = None,
        *,
        context: str | None = None,
        n_draws: int = 10,
        n_cells: int = 200,
        seed: int = 0,
        return_draws: bool = False,
        by_context: bool = False,
        basal: str | None = None,
        adata_controls: ad.AnnData | CheckedCells | None = None,
        space: str = "model",
    ) -> pd.DataFrame | tuple[pd.DataFrame, np.ndarray]:
        """Model ATE, conditions x genes, in the model's space or in the data's.

        - ``space="model"``: on the ``log2(1e4 x / sum x + 1)`` scale; basal states come
          from the prior (or the encoder, see ``basal``) and library sizes are ``1e4``.
        - ``space="data"``: what a data ATE measures, ``log1p(1e4 x / total)`` (natural log,
          as ``sc.pp.normalize_total`` + ``sc.pp.log1p`` write it) of cells drawn at the
          observed library sizes of real control cells whose basal states the encoder
          infers (``adata_controls``, by default the registered data's controls). Use it
          whenever the model is compared with data: in sparse cells ``log1p`` of a few
          counts is far from the log of their mean, so the two spaces differ.

        Each condition shares basal states and count noise with the control (common random
        numbers). Contexts are weighted equally unless ``context`` names one.

        Parameters
        ----------
        by_context
            One row per ``(context, condition)`` instead of pooling the contexts.
        basal
            ``"prior"`` (the default in model space), or ``"encoder"`` (the only choice in
            data space): basal states inferred by the guide from real control cells
            (``adata_controls``, by default the training data's controls; at most
            ``n_cells`` per context; in model space a context without control cells falls
            back to the prior). ``adata_controls`` may be the result of :meth:`check_cells`.
        space
            ``"model"`` or ``"data"`` (see above).

        Returns
        -------
        DataFrame, or (DataFrame, ndarray)
            The posterior mean ATE; with ``return_draws`` also the draws
            (draws x rows x genes) for credible intervals. Draw ``d`` of a seed uses the
            same globals as draw ``d`` of :meth:`to_inference_data`.
        """
        self._require_trained()
        n_draws = validate.check_positive_int(n_draws, "n_draws")
        n_cells = validate.check_positive_int(n_cells, "n_cells")
        seed = validate.check_seed(seed)
        conditions = self._conditions(perturbations)
        check_choice("space", space, posterior.ATE_SPACES)
        if basal is None:
            basal = "encoder" if space == "data" else "prior"
        check_choice("basal", basal, self.BASAL_SOURCES)
        if space == "data" and basal != "encoder":
            raise InputError(
                "space='data' draws cells from real controls' basal states; pass "
                "basal='encoder' or leave basal unset"
            )
        controls = self._encoder_controls(basal, adata_controls)
        basal_cells = self._basal_cells(
            None if controls is None else encode(controls), n_cells, seed
        )
        if space == "data":
            missing = [
                self.registry.contexts[c]
                for c in self._context_ids(context)
                if c not in basal_cells
            ]
            if missing:
                raise InputError(
                    f"space='data' needs control cells of every context; none for {missing}: "
                    "pass adata_controls= with them, or context= one that has them"
                )
        if by_context:
            contexts = np.asarray(self.registry.contexts)[self._context_ids(context)]
            index = pd.MultiIndex.from_product(
                [contexts, list(conditions.labels)], names=[CONTEXT_LEVEL, CONDITION_LEVEL]
            )
            draws = context_ate_draws(
                self.module,
                self.registry,
                index,
                n_draws=n_draws,
                n_cells=n_cells,
                seed=seed,
                target_sum=ATE_TARGET_SUM,
                basal_cells=basal_cells,
                space=space,
                **self._draw_context(),
            )
        else:
            index = pd.Index(list(conditions.labels), name=CONDITION_LEVEL)
            draws = posterior.ate_draws(
                self.module,
                self._dosage_tensor(conditions),
                self._context_ids(context),
                n_draws=n_draws,
                n_cells=n_cells,
                n_genes=self.registry.n_genes,
                target_sum=ATE_TARGET_SUM,
                seed=seed,
                population=self._population(),
                basal_cells=basal_cells,
                space=space,
            ).numpy()
        mean = pd.DataFrame(draws.mean(axis=0), index=index, columns=list(self.registry.genes))
        return (mean, draws) if return_draws else mean

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
        """Write the model to directory ``path`` atomically (weights, config, registry, split)."""
        return save_model_dir(path, self.module.state_dict(), self._metadata(), overwrite=overwrite)

    def save_into(self, directory: str | os.PathLike) -> None:
        """Write the model files into an existing directory, for callers that make the
        directory atomic themselves (the CLI writes a model next to its reports)."""
        write_model_files(directory, self.module.state_dict(), self._metadata())

    def _metadata(self) -> dict:
        return {
            "class": type(self).__name__,
            "config": self.config.to_dict(),
            "registry": self.registry.to_dict(),
            "library_stats": self.library_stats,
            "history": None if self.history is None else self.history.to_dict(),
            "split": None if self.split is None else self.split.to_dict(),
            "trained_actions": None
            if self.trained_actions is None
            else self.trained_actions.tolist(),
            "trained_by_context": None
            if self.trained_by_context is None
            else self.trained_by_context.tolist(),
        }

    @classmethod
    def load(
        cls, path: str | os.PathLike, adata: ad.AnnData | None = None, *, device: str = "cpu"
    ) -> PerturbationModel:
        """Restore a model saved by :meth:`save`.

        The saved registry is replayed: ``adata``, if given, must have the model's genes in
        the model's order and only conditions the model knows; the package version must
        match in major.minor. The saved class must be registered (the family is, once
        :mod:`samsvae_plus.model` is imported).
        """
        validate.check_device(device)
        state, metadata = load_model_dir(path)
        saved_class = PerturbationModel._classes.get(metadata.get("class", ""))
        if saved_class is None or not issubclass(saved_class, cls):
            raise InputError(
                f"{path} holds a {metadata.get('class')!r}, not a {cls.__name__}; load it with that class"
            )
        registry = Registry.from_dict(metadata["registry"])
        if adata is not None:
            check_model_data(adata, registry)
        config = saved_class.CONFIG.from_dict(metadata["config"])
        model = saved_class.__new__(saved_class)
        model._setup(registry, config, adata)
        try:
            model.module.load_state_dict(state)
        except RuntimeError as err:
            raise InputError(
                f"{path} does not match the {saved_class.__name__} it describes: {str(err).splitlines()[0]}"
            ) from None
        model.library_stats = metadata.get("library_stats")
        if metadata.get("history"):
            model.history = TrainingHistory.from_dict(metadata["history"])
        if metadata.get("split"):
            model.split = Split.from_dict(metadata["split"])
        if metadata.get("trained_actions") is not None:
            model.trained_actions = np.asarray(metadata["trained_actions"], dtype=bool)
        if metadata.get("trained_by_context") is not None:
            model.trained_by_context = np.asarray(metadata["trained_by_context"], dtype=bool)
        model.device = resolve_device(device)
        model.module.to(model.device)
        return model


def _qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


PerturbationModel.__signature__ = constructor_signature(ModelConfig, ())
