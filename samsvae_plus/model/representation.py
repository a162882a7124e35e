"""Latent states and expected expression of cells: the verbs scanpy users reach for.

:class:`RepresentationVerbs` is a mixin of
:class:`~samsvae_plus.model.base.PerturbationModel`, as
:class:`~samsvae_plus.model.evaluation.EvaluationVerbs` is: it relies on the base class for
the registry, the trained module, the source-cell checks and the requested conditions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import anndata as ad
import numpy as np
import pandas as pd
import torch

from samsvae_plus.data import validate
from samsvae_plus.data.encode import encode
from samsvae_plus.data.loaders import make_batch
from samsvae_plus.errors import InputError, check_choice
from samsvae_plus.inference.latent_states import (
    LATENT_KINDS,
    basal_states,
    expected_expression,
    global_means,
    global_values,
    latent_states,
)
from samsvae_plus.model.prediction_output import output_adata, run_record, source_cell_obs
from samsvae_plus.settings import seeded


class RepresentationVerbs:
    """``get_latent_representation`` and ``get_normalized_expression`` (mixed into
    ``PerturbationModel``)."""

    # False for a model whose perturbations enter the decoder instead of the latent space
    LATENT_SHIFT: ClassVar[bool] = True

    def _global_values(self, give_mean: bool):
        """The masks and embeddings at their variational means, or one posterior draw of
        them (seeded by the caller)."""
        if give_mean:
            return global_means(self.module, self._untrained())
        return global_values(self.module["guide"], self._global_draw())

    @torch.no_grad()
    def get_latent_representation(
        self,
        adata: ad.AnnData | None = None,
        kind: str = "basal",
        give_mean: bool = True,
        *,
        seed: int = 0,
        batch_size: int = 1024,
    ) -> np.ndarray:
        """Each cell's latent state, cells x latent dims, e.g. for ``obsm`` and a UMAP.

        Parameters
        ----------
        adata
            Cells with the model's genes and raw counts; by default the data the model was
            set up with. Cells without condition labels are read as controls.
        kind
            ``"basal"``: the state before any perturbation, from the guide's encoder (what
            separates cell types and states); ``"shift"``: the cell's perturbation effect
            ``d_i (m * e)``; ``"z"``: their sum, the state the decoder reads. A model
            without a latent shift (``ConditionalVAE``) has only ``"basal"``.
        give_mean
            Use the variational means (the encoder's location, ``q(m = 1)`` and the
            embedding means; prior means for actions without training cells); otherwise
            one posterior draw of the masks, embeddings and basal states.
        seed
            Seed of the draw when ``give_mean`` is False.
        batch_size
            Cells encoded at a time.

        Returns
        -------
        ndarray
            ``float32``, cells x ``latent_dim``, in the order of ``adata``'s cells; cells
            whose labels the registry excludes (``setup_anndata(exclude=...)``) are left
            out, so such an AnnData needs subsetting before the result goes to ``obsm``.

        Examples
        --------
        >>> adata.obsm["X_samsvae_basal"] = model.get_latent_representation()  # doctest: +SKIP
        >>> sc.pp.neighbors(adata, use_rep="X_samsvae_basal")  # doctest: +SKIP
        """
        self._require_trained()
        check_choice("kind", kind, LATENT_KINDS)
        check_choice("give_mean", give_mean, (True, False))
        seed = validate.check_seed(seed)
        batch_size = validate.check_positive_int(batch_size, "batch_size")
        if kind != "basal" and not self.LATENT_SHIFT:
            raise InputError(
                f"{type(self).__name__} has no latent shift (perturbations enter its decoder), "
                f"so kind={kind!r} does not exist; pass kind='basal'"
            )
        cells = self._source_cells(self._require_adata() if adata is None else adata)
        data = encode(cells)
        guide = self.module["guide"]
        states = []
        with seeded(seed):
            values = self._global_values(give_mean)
            for start in range(0, data.n_cells, batch_size):
                rows = np.arange(start, min(start + batch_size, data.n_cells))
                batch = make_batch(data, rows, rows - start, self.device)
                state = latent_states(guide, batch, values, kind, give_mean=give_mean)
                states.append(state.float().cpu().numpy())
        return np.concatenate(states)

    @torch.no_grad()
    def get_normalized_expression(
        self,
        adata_controls: ad.AnnData,
        perturbations: Sequence[str] | None = None,
        *,
        library_size: float | None = 1e4,
        give_mean: bool = True,
        n_draws: int = 1,
        seed: int = 0,
        include_control: bool = True,
        batch_size: int = 1024,
        return_dataframe: bool = False,
    ) -> ad.AnnData | pd.DataFrame:
        """Expected expression of the given cells under each perturbation, without count noise.

        ``library_size * softmax(decoder(z))``, the mean of the model's negative binomial,
        with ``z`` the cell's basal state (inferred by the guide as in :meth:`predict`)
        plus the target's shift. Unlike :meth:`predict`'s sampled counts it is smooth, so
        differences between conditions are the model's, not sampling noise.

        Parameters
        ----------
        adata_controls
            Cells with the model's genes, usually control cells (as for :meth:`predict`).
        perturbations, include_control
            The conditions, as for :meth:`predict` (labels matched to the training labels;
            by default the control and every condition seen in training).
        library_size
            The total the expression is scaled to; None for each cell's observed library
            size.
        give_mean
            Basal states, masks and embeddings at their variational means; otherwise the
            average over ``n_draws`` posterior draws of them.
        n_draws
            Posterior draws averaged when ``give_mean`` is False.
        seed
            Seed of the draws.
        batch_size
            Source cells encoded at a time.
        return_dataframe
            Return a DataFrame indexed by (condition, source cell) instead of an AnnData.

        Returns
        -------
        AnnData or DataFrame
            Dense ``float32`` expression, one row per condition and source cell, laid out
            as :meth:`predict`'s output without draws (cells named ``SOURCE_CONDITION``).
        """
        self._require_trained()
        check_choice("give_mean", give_mean, (True, False))
        check_choice("return_dataframe", return_dataframe, (True, False))
        n_draws = validate.check_positive_int(n_draws, "n_draws")
        if give_mean and n_draws != 1:
            raise InputError("n_draws applies to give_mean=False; drop it or pass give_mean=False")
        seed = validate.check_seed(seed)
        batch_size = validate.check_positive_int(batch_size, "batch_size")
        if library_size is not None:
            library_size = validate.check_positive_number(library_size, "library_size")
        conditions = self._prediction_conditions(perturbations, include_control)
        cells = self._source_cells(adata_controls)
        data = encode(cells)
        labels = list(conditions.labels)
        targets = self._dosage_tensor(conditions).to(self.device)
        model, guide = self.module["model"], self.module["guide"]
        n = data.n_cells
        expression = np.zeros((len(labels) * n, self.registry.n_genes), dtype=np.float32)
        with seeded(seed):
            for _ in range(n_draws):
                values = self._global_values(give_mean)
                for start in range(0, n, batch_size):
                    rows = np.arange(start, min(start + batch_size, n))
                    batch = make_batch(data, rows, rows - start, self.device)
                    basal = basal_states(guide, batch, values, give_mean=give_mean)
                    library = (
                        batch.library_size
                        if library_size is None
                        else torch.full_like(batch.library_size, library_size)
                    )
                    for j, target in enumerate(targets):
                        dosage = target.expand_as(batch.dosage)
                        mean = expected_expression(model, basal, dosage, values, library)
                        expression[j * n + rows] += mean.float().cpu().numpy()
        expression /= n_draws
        obs = source_cell_obs(cells, labels, None)
        if return_dataframe:
            index = pd.MultiIndex.from_arrays(
                [obs[self.registry.perturbation_key].astype(str), obs["control_cell"].astype(str)],
                names=[self.registry.perturbation_key, "control_cell"],
            )
            return pd.DataFrame(expression, index=index, columns=adata_controls.var_names.copy())
        record = run_record(
            self,
            "get_normalized_expression",
            seed=seed,
            n_draws=n_draws,
            give_mean=give_mean,
            library_size="observed" if library_size is None else library_size,
        )
        return output_adata(expression, obs, adata_controls, record)
