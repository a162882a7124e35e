"""The evaluation verbs of the user-facing models: held-out IWELBO, ATE posterior-predictive
checks and the ArviZ export.

:class:`EvaluationVerbs` is a mixin of :class:`~samsvae_plus.model.base.PerturbationModel`; it
relies on the base class for the registry, the trained module, the saved split and the
posterior draws, and works for every model of the family.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import anndata as ad
import numpy as np
import pandas as pd
import torch

from samsvae_plus._version import __version__
from samsvae_plus.data import checked
from samsvae_plus.data.checked import CheckedCells, control_rows
from samsvae_plus.data.encode import EncodedData, encode
from samsvae_plus.data.loaders import Batch, make_batch
from samsvae_plus.data.transforms import ATE_TARGET_SUM
from samsvae_plus.errors import InputError, check_choice
from samsvae_plus.evaluate.ate import (
    CONDITION_LEVEL,
    CONTEXT_LEVEL,
    context_differences,
    group_log_means,
    pool_contexts,
)
from samsvae_plus.evaluate.ate_check import ATECheck, ATEDraws, perturbation_splits
from samsvae_plus.inference import posterior
from samsvae_plus.inference.iwelbo import importance_weighted_bound
from samsvae_plus.inference.predictive_ate import context_ate_draws, replicated_group_means
from samsvae_plus.inference.sites import global_latent_sites
from samsvae_plus.inference.to_arviz import build_inference_data
from samsvae_plus.settings import seeded


class EvaluationVerbs:
    """Evaluation verbs shared by every model of the family (mixed into ``PerturbationModel``)."""

    SPLIT_NAMES: ClassVar[tuple[str, ...]] = ("train", "validation", "test", "all")
    BASAL_SOURCES: ClassVar[tuple[str, ...]] = ("prior", "encoder")

    def split_indices(self, name: str, n_obs: int | None = None) -> np.ndarray:
        """Row indices of split ``name`` (``"train"``, ``"validation"``, ``"test"``, ``"all"``)
        into the data the model was trained on, without the cells of the labels its registry
        excludes (``checked.without_excluded(adata, model.registry)``).

        Parameters
        ----------
        name
            Which part of the saved split.
        n_obs
            Number of cells of the data the indices will be applied to; it must be the
            number the split covers (``"all"`` needs it when the model has no data).
        """
        check_choice("split", name, self.SPLIT_NAMES)
        if self.split is None:
            raise InputError(
                f"this {type(self).__name__} has no saved split; train it, or pass the cells to evaluate directly"
            )
        total = len(self.split.train) + len(self.split.validation) + len(self.split.test)
        if n_obs is not None and n_obs != total:
            excluded = (
                ""
                if not self.registry.exclude
                else f" (without the cells labelled {', '.join(map(repr, self.registry.exclude))}"
                ", which the model excludes)"
            )
            raise InputError(
                f"the model's split covers {total} cells but the data has {n_obs}; "
                f"pass the h5ad the model was trained on{excluded}"
            )
        if name == "all":
            return np.arange(total)
        return np.asarray(getattr(self.split, name))

    def check_cells(
        self, adata: ad.AnnData | CheckedCells, *, controls: bool = False
    ) -> CheckedCells:
        """Check cells against this model once, for the verbs that take cells.

        ``iwelbo``, ``check_ate`` and the ``adata_controls`` of ``check_ate`` and
        ``average_treatment_effect`` check an AnnData they are given before any work. Pass
        them the result of this instead when several calls use the same cells, so that
        the cells are checked once.

        Parameters
        ----------
        adata
            Cells with the model's genes, raw counts and condition labels. Cells already
            checked against this model are returned as they are.
        controls
            Check only the control cells (every cell when ``adata`` has no condition
            labels), as the basal cells of ``basal="encoder"``.

        Raises
        ------
        InputError
            For the first problem found (see :mod:`samsvae_plus.data.checked`), or cells
            checked against another model.
        """
        if isinstance(adata, CheckedCells):
            if adata.registry != self.registry or adata.actions != self.ACTIONS:
                raise InputError(
                    "these cells were checked against another model; check the AnnData "
                    "with this model's check_cells"
                )
            return adata
        if controls:
            return checked.check_control_cells(adata, self.registry, actions=self.ACTIONS)
        return checked.check_cells(adata, self.registry, actions=self.ACTIONS)

    def _encoder_controls(
        self, basal: str, adata_controls: ad.AnnData | CheckedCells | None
    ) -> CheckedCells | None:
        """The checked control cells of ``basal="encoder"`` (by default the training
        data's); None for ``basal="prior"``."""
        if basal == "prior":
            return None
        if adata_controls is None:
            adata_controls = self._require_adata()
        return self.check_cells(adata_controls, controls=True)

    def _basal_cells(
        self, controls: EncodedData | None, n_cells: int, seed: int
    ) -> dict[int, Batch] | None:
        """Real control cells per context id, at most ``n_cells`` each, for
        ``basal="encoder"`` (None for the prior). ``controls`` may hold other cells too,
        which are left out."""
        if controls is None:
            return None
        rows = control_rows(controls.conditions, self.registry)
        data = controls if len(rows) == controls.n_cells else controls.subset(rows)
        rng = np.random.default_rng(seed)
        cells = {}
        for c in np.unique(data.context):
            rows = np.flatnonzero(data.context == c)
            if len(rows) > n_cells:
                rows = np.sort(rng.choice(rows, n_cells, replace=False))
            cells[int(c)] = make_batch(data, rows, np.arange(len(rows)))
        return cells

    def iwelbo(
        self,
        adata: ad.AnnData | CheckedCells,
        n_samples: int = 100,
        *,
        seed: int = 0,
        batch_size: int = 512,
        include_global_kl: bool = False,
        n_global_draws: int = 1,
        per_cell: bool = False,
        progress: bool = True,
    ) -> float | np.ndarray:
        """Importance-weighted lower bound of held-out cells, in nats per cell.

        ``n_samples`` draws of the global latents are taken from the guide once and shared
        by all cells; for each cell and draw, the local latents come from the guide's
        encoder, and ``w = log p(x | z) + log p(z) - log q(z | x)`` (local latents only).
        The bound is ``logsumexp_s w_s - log S`` per cell. The global latents are not
        scored against their prior: this bounds each cell's log predictive density under
        the approximate posterior of the globals. It equals the local terms of the
        one-sample ELBO at ``n_samples=1`` and tightens as ``n_samples`` grows.

        Parameters
        ----------
        adata
            Cells to score (with the model's genes and perturbation labels), or the
            result of :meth:`check_cells`.
        n_samples
            Importance samples per cell.
        seed
            Seed of the sampling (the global random stream is left untouched).
        batch_size
            Cells per minibatch; memory is one batch x genes at a time.
        include_global_kl
            Return the full-model bound instead: ``n_global_draws`` draws of the globals,
            each with ``n_samples`` local samples per cell, plus
            ``(log p(g) - log q(g)) / n_cells``; the mean over cells times the number of
            cells bounds ``log p`` of these cells as a data set under the prior.
        n_global_draws
            Draws of the globals averaged in the full-model bound.
        per_cell
            Return the bound of every cell instead of the mean.
        progress
            Show a progress bar.
        """
        self._require_trained()
        if n_samples < 1 or batch_size < 1 or n_global_draws < 1:
            raise InputError("n_samples, batch_size and n_global_draws must be positive integers")
        data = encode(self.check_cells(adata))
        with seeded(seed):
            bound = importance_weighted_bound(
                self.module,
                data,
                n_samples=n_samples,
                batch_size=batch_size,
                include_global_kl=include_global_kl,
                n_global_draws=n_global_draws,
                device=self.device,
                progress=progress,
                untrained=self._untrained(),
            )
        return bound if per_cell else float(bound.mean())

    def check_ate(
        self,
        adata: ad.AnnData | CheckedCells | None = None,
        *,
        reference: pd.DataFrame | None = None,
        reference_se: pd.DataFrame | None = None,
        splits: pd.Series | dict | None = None,
        by_context: bool = False,
        basal: str = "prior",
        adata_controls: ad.AnnData | CheckedCells | None = None,
        n_draws: int = 100,
        n_cells: int = 200,
        level: float = 0.9,
        top_n: int = 20,
        seed: int = 0,
        batch_size: int = 1024,
        progress: bool = True,
    ) -> ATECheck:
        """Posterior-predictive check of treatment effects against data or a known truth.

        With ``adata`` and no ``reference``, the reference is the data's ATE (each
        condition against the controls of its context) and two sets of draws are made:
        the population ATE (as :meth:`average_treatment_effect`; its mean gives Pearson
        and R², its quantiles the credible intervals) and replicates of the observed
        cells, each cell generated again with its context, condition and library size.
        The data's ATE is checked against the intervals of the replicated ATE, which carry
        the same sampling noise as the data's (same cells, no common random numbers).

        With a ``reference`` table (e.g. a simulator's ``true_ate``), only population draws
        are made, with ``n_cells`` cells per context. Their spread is the posterior
        uncertainty of the globals plus the Monte Carlo error of ``n_cells`` cells. A
        reference that is itself a Monte Carlo estimate has an error of its own; two honest
        ways to allow for it:

        - estimate the model's ATE the way the reference was estimated (the simulator's
          truth: common random numbers, library size 1e4, ``params["ate_cells"]`` cells
          per context): pass that ``n_cells``, and every draw carries the same Monte Carlo
          error as the reference;
        - or pass the reference's standard error as ``reference_se`` (the simulator stores
          ``true_ate_se``) with ``n_cells`` several times the reference's cells, so that
          the model's own Monte Carlo error is not counted a second time.

        A reference indexed by condition is compared with the model's ATE pooled over all
        contexts with equal weights; one indexed by ``(context, condition)`` context by
        context.

        Parameters
        ----------
        adata
            Cells whose ATE is the reference (data mode), or whose controls give basal
            states with ``basal="encoder"``. ``adata`` and ``adata_controls`` may be the
            results of :meth:`check_cells`; an AnnData given as both is checked once.
        reference
            A reference ATE table instead of the data's.
        reference_se
            Standard error of ``reference`` (same rows and genes), when it is an estimate.
        splits
            Split label (``"train"``, ``"validation"``, ``"test"``) per condition; by
            default derived from the model's saved split of its training data
            (:func:`~samsvae_plus.evaluate.ate_check.perturbation_splits`) when it has them.
        by_context
            In data mode, one row per ``(context, condition)`` instead of pooling the
            contexts in which a condition was observed.
        basal
            ``"prior"`` or ``"encoder"`` (basal states inferred from real control cells:
            ``adata_controls``, by default the training data's control cells, else those
            of ``adata``). Replicated cells then take the encoded basal state of a random
            control cell of their context among the evaluated cells.
        n_draws
            Posterior draws.
        n_cells
            Cells per context and draw of the population ATE.
        level
            Nominal level of the intervals.
        top_n
            Genes per perturbation of the top-gene metrics, by largest ``|reference|``.
        seed
            Seed of all sampling (the global random stream is left untouched).

        Returns
        -------
        ATECheck
            Long table, metrics per split, per-perturbation metrics and calibration curve.
        """
        draws = self.ate_check_draws(
            adata,
            reference=reference,
            reference_se=reference_se,
            by_context=by_context,
            basal=basal,
            adata_controls=adata_controls,
            n_draws=n_draws,
            n_cells=n_cells,
            seed=seed,
            batch_size=batch_size,
            progress=progress,
        )
        return draws.summarise(splits=self.condition_splits(splits), level=level, top_n=top_n)

    def condition_splits(self, splits: pd.Series | dict | None = None) -> pd.Series | None:
        """The split label of each condition for :meth:`check_ate`: ``splits`` as a Series,
        by default the split of each condition's training cells (None when the model has
        no data or split)."""
        if splits is None and self.adata is not None and self.split is not None:
            trained_on = checked.without_excluded(self.adata, self.registry)
            splits = perturbation_splits(
                np.asarray(trained_on.obs[self.registry.perturbation_key]), self.split
            )
        return None if splits is None else pd.Series(splits)

    def ate_check_draws(
        self,
        adata: ad.AnnData | CheckedCells | None = None,
        *,
        reference: pd.DataFrame | None = None,
        reference_se: pd.DataFrame | None = None,
        by_context: bool = False,
        basal: str = "prior",
        adata_controls: ad.AnnData | CheckedCells | None = None,
        n_draws: int = 100,
        n_cells: int = 200,
        seed: int = 0,
        batch_size: int = 1024,
        progress: bool = True,
    ) -> ATEDraws:
        """The reference and draws that :meth:`check_ate` summarises (its arguments, less
        the summary's): what a :class:`~samsvae_plus.model.ensemble.BootstrapEnsemble`
        pools over its members."""
        self._require_trained()
        if reference is None and adata is None:
            raise InputError("pass adata (its ATE is checked) or a reference ATE table")
        check_choice("basal", basal, self.BASAL_SOURCES)
        if adata_controls is None and basal == "encoder":
            # the training data has the most control cells; the evaluated cells otherwise
            adata_controls = self.adata if self.adata is not None else adata
        cells = None if reference is not None else self.check_cells(adata)
        if basal == "encoder" and cells is not None and adata_controls is adata:
            # The evaluated cells give the basal states too: checked and encoded once.
            data = control_data = encode(cells)
        else:
            controls = self._encoder_controls(basal, adata_controls)
            data = None if cells is None else encode(cells)
            control_data = None if controls is None else encode(controls)
        draw_options = dict(
            n_draws=n_draws,
            n_cells=n_cells,
            seed=seed,
            target_sum=ATE_TARGET_SUM,
            **self._draw_context(),
        )
        with seeded(seed):
            basal_cells = self._basal_cells(control_data, n_cells, seed)
            if reference is not None:
                return self._reference_draws(reference, reference_se, basal_cells, draw_options)
            contexts = np.asarray(self.registry.contexts)[data.context]
            cells = pd.MultiIndex.from_arrays([contexts, data.conditions])
            groups = cells.unique().sort_values()
            codes = groups.get_indexer(cells)
            pairs, observed = context_differences(
                group_log_means(data.counts, codes, len(groups)),
                groups,
                self.registry.control_label,
            )
            if len(pairs) == 0:
                raise InputError(
                    "adata has no perturbed cells in a context that also has control cells; "
                    "the ATE needs both"
                )
            replicated = replicated_group_means(
                self.module,
                data,
                codes,
                len(groups),
                n_draws=n_draws,
                seed=seed,
                basal_source=None
                if basal == "prior"
                else _control_sources(data, codes, groups, self.registry.control_label, seed),
                population=self._population(),
                batch_size=batch_size,
                device=self.device,
                progress=progress,
            )
            _, replicated = context_differences(replicated, groups, self.registry.control_label)
            population = context_ate_draws(
                self.module,
                self.registry,
                pairs,
                basal_cells=basal_cells,
                **draw_options,
            )
        index = pairs
        if not by_context:
            index, observed = pool_contexts(observed, pairs)
            _, replicated = pool_contexts(replicated, pairs)
            _, population = pool_contexts(population, pairs)
        reference = pd.DataFrame(observed, index=index, columns=list(self.registry.genes))
        return ATEDraws(reference, population, interval_draws=replicated)

    def _reference_draws(
        self,
        reference: pd.DataFrame,
        reference_se: pd.DataFrame | None,
        basal_cells: dict[int, Batch] | None,
        draw_options: dict,
    ) -> ATEDraws:
        """Population draws for a given reference table (:meth:`check_ate`'s reference mode)."""
        reference = reference.loc[:, list(self.registry.genes)]
        by_context = isinstance(reference.index, pd.MultiIndex)
        if by_context:
            pairs = reference.index
            self._conditions(list(pairs.get_level_values(-1)))
        else:
            pairs = pd.MultiIndex.from_product(
                [
                    list(self.registry.contexts),
                    list(self._conditions(list(reference.index)).labels),
                ],
                names=[CONTEXT_LEVEL, CONDITION_LEVEL],
            )
        draws = context_ate_draws(
            self.module, self.registry, pairs, basal_cells=basal_cells, **draw_options
        )
        if not by_context:
            _, draws = pool_contexts(draws, pairs)
        return ATEDraws(reference, draws, reference_se=reference_se)

    @torch.no_grad()
    def to_inference_data(
        self,
        *,
        n_draws: int = 100,
        n_chains: int = 2,
        include_ate: bool = False,
        perturbations: Sequence[str] | None = None,
        n_cells: int = 200,
        seed: int = 0,
    ) -> Any:
        """Posterior draws of the global latents as an ArviZ object.

        The ``posterior`` group holds independent draws from the guide, arranged as
        ``n_chains`` chains of ``n_draws`` (more than one chain lets ArviZ compute its
        between-chain diagnostics; for independent draws they read as converged): every
        global latent site (``mask`` and ``embedding`` with dims
        ``(perturbation, latent)`` in SAMS-VAE), ``mask_prob`` (``q(m = 1)``; constant
        over draws for the mean-field guide, so ArviZ reports NaN for its diagnostics)
        when the model has masks, and with ``include_ate`` the population ATE ``ate``
        (dims ``(condition, gene)``, see :meth:`average_treatment_effect`) of the same
        draws of the globals.

        Parameters
        ----------
        n_draws
            Draws per chain.
        n_chains
            Chains; ``n_chains * n_draws`` draws in all.
        include_ate
            Add the ATE draws of ``perturbations`` (default: every condition).
        n_cells
            Cells per context and draw of the ATE.
        seed
            Seed of the draws (the global random stream is left untouched).

        Returns
        -------
        arviz.InferenceData (ArviZ 0.x) or xarray.DataTree (ArviZ 1.x)
        """
        self._require_trained()
        if n_draws < 1 or n_chains < 1:
            raise InputError(f"n_draws and n_chains must be positive, got {n_draws} and {n_chains}")
        total = n_draws * n_chains
        guide = self.module["guide"]
        variables: dict[str, list[np.ndarray]] = {}
        with seeded(seed):
            draws = posterior.global_draws(
                guide, total, seed, self.module["model"], self._untrained()
            )
            for trace in draws:
                for name in global_latent_sites(trace):
                    variables.setdefault(name, []).append(trace.nodes[name]["value"].cpu().numpy())
            arrays = {name: np.stack(values) for name, values in variables.items()}
            if "mask" in arrays:
                arrays["mask"] = arrays["mask"].astype(np.int8)
            if hasattr(guide, "mask_probabilities") and "mask_prob" not in arrays:
                probs = self.mask_probabilities().to_numpy()
                arrays["mask_prob"] = np.broadcast_to(probs, (total, *probs.shape)).copy()
            coords: dict[str, list] = {
                "perturbation": list(self.actions),
                "latent": [f"z{k}" for k in range(getattr(self.config, "latent_dim", 0))],
            }
            if include_ate:
                ate, arrays["ate"] = self.average_treatment_effect(
                    perturbations, n_draws=total, n_cells=n_cells, seed=seed, return_draws=True
                )
                coords.update(condition=list(ate.index), gene=list(self.registry.genes))
        if not arrays:
            raise InputError(
                f"{type(self).__name__} has no global latent variables; pass include_ate=True"
            )
        arrays = {k: v.reshape(n_chains, n_draws, *v.shape[1:]) for k, v in arrays.items()}
        attrs = {"model": type(self).__name__, "seed": seed, "samsvae_plus_version": __version__}
        return build_inference_data(arrays, coords, attrs=attrs)


def _control_sources(
    data: EncodedData, codes: np.ndarray, groups: pd.MultiIndex, control_label: str, seed: int
) -> np.ndarray:
    """For every cell, a control cell of its context whose encoded basal state it takes:
    itself for a control, a random control of its context otherwise (itself again where the
    context has no controls; such cells enter no ATE)."""
    rng = np.random.default_rng(seed)
    is_control = np.asarray(groups.get_level_values(1) == control_label)[codes]
    source = np.arange(data.n_cells)
    for c in np.unique(data.context):
        in_context = data.context == c
        controls = np.flatnonzero(in_context & is_control)
        targets = np.flatnonzero(in_context & ~is_control)
        if len(controls) and len(targets):
            source[targets] = rng.choice(controls, len(targets))
    return source
