"""Bootstrap ensembles: a bagged posterior that allows for the sampling error of the fit.

A trained model's posterior covers its global latents only. The decoder, the dispersions
and the context means are point estimates, fitted to one sample of cells and treated as
known, so credible intervals of treatment effects leave out how much those estimates
would change with another sample. On the demo simulation that change is as large as the
posterior spread itself, and the 90% credible intervals cover about 0.6 of the true ATEs.

The bagged posterior (BayesBag: Bühlmann 2014; Huggins and Miller 2023, "Reproducible
model selection using bagged posteriors", Bayesian Analysis 18(1)) is the average of the
posteriors of models fitted to bootstrap resamples of the data. Its spread is the
posterior's plus the sampling variability of the fit, and it stays calibrated when the
model is misspecified or partly point-estimated. Here each member is the same model
(class and configuration) trained on a resample of the training cells drawn within each
(context, condition) group (:func:`~samsvae_plus.data.splits.bootstrap_split`), with the
validation cells left as they are for early stopping; the ensemble's draws are the
members' draws pooled, an equal share from each.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from samsvae_plus._atomic import atomic_directory
from samsvae_plus._version import __version__
from samsvae_plus.data import validate
from samsvae_plus.data.checked import without_excluded
from samsvae_plus.data.splits import bootstrap_split
from samsvae_plus.errors import InputError
from samsvae_plus.evaluate.ate_check import ATECheck, pool_ate_draws
from samsvae_plus.model.base import PerturbationModel

MANIFEST = "ensemble.json"


def draw_shares(n_draws: int, n_members: int) -> list[int]:
    """Draws per member: ``n_draws`` split as evenly as possible, the first members taking
    the remainder; every member draws at least once."""
    if n_draws < n_members:
        raise InputError(
            f"n_draws={n_draws} is fewer than the ensemble's {n_members} members; "
            f"draw at least one per member"
        )
    share, extra = divmod(n_draws, n_members)
    return [share + (k < extra) for k in range(n_members)]


def cell_groups(adata: ad.AnnData, model: PerturbationModel) -> np.ndarray:
    """The (context, condition) group of every cell the model's split numbers, the strata
    of the bootstrap."""
    registry = model.registry
    adata = without_excluded(adata, registry)
    labels = np.asarray(adata.obs[registry.perturbation_key], dtype=str)
    if registry.context_key is None:
        return labels
    contexts = np.asarray(adata.obs[registry.context_key], dtype=str)
    return np.char.add(np.char.add(contexts, "\x1f"), labels)


class BootstrapEnsemble:
    """Models of one class and configuration fitted to bootstrap resamples of the same cells.

    Build one with :meth:`fit` (``sp.BootstrapEnsemble.fit(model, 8, ...)``); its
    :meth:`average_treatment_effect` and :meth:`check_ate` pool the members' posterior
    draws, so intervals allow for the sampling variability of the fit as well as the
    posterior uncertainty of the global latents.

    Parameters
    ----------
    members
        Trained models with the same registry.
    """

    def __init__(self, members: Sequence[PerturbationModel]) -> None:
        members = list(members)
        if not members:
            raise InputError("a bootstrap ensemble needs at least one member")
        first = members[0]
        for member in members[1:]:
            if type(member) is not type(first) or member.registry != first.registry:
                raise InputError(
                    "ensemble members must be models of one class trained on the same "
                    "registered data"
                )
        for member in members:
            if not member.is_trained:
                raise InputError(
                    f"every ensemble member must be trained; this {type(member).__name__} is not"
                )
        self.members = members

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        return f"BootstrapEnsemble({len(self)} x {type(self.members[0]).__name__})"

    @classmethod
    def fit(
        cls,
        model: PerturbationModel,
        n_members: int = 8,
        *,
        seed: int = 0,
        **train_options,
    ) -> BootstrapEnsemble:
        """Fit ``n_members`` copies of ``model`` (class and configuration) to bootstrap
        resamples of its training cells.

        Parameters
        ----------
        model
            A trained model with its data: its split gives the cells to resample (within
            each (context, condition) group) and the validation cells, kept as they are.
        n_members
            Members to train; each costs one training run.
        seed
            Member ``k`` draws its resample and trains with seed ``seed + k``.
        **train_options
            Passed to every member's :meth:`~PerturbationModel.train` (``max_epochs``,
            ``lr``, ...), as they were given to ``model``; ``split`` and ``seed`` are set
            here. Training is in memory: the loaders take the repeated indices of a
            resample as weights.
        """
        n_members = validate.check_positive_int(n_members, "n_members")
        seed = validate.check_seed(seed)
        adata = model.adata
        if adata is None:
            raise InputError(
                "the model was loaded without data; load it with adata= to resample its cells"
            )
        if model.split is None:
            raise InputError("train the model first: its split gives the cells to resample")
        if adata.isbacked:
            raise InputError(
                "a bootstrap ensemble trains in memory; load the AnnData without backed='r'"
            )
        for option in ("split", "seed", "loader"):
            if option in train_options:
                raise InputError(f"the ensemble sets {option!r} itself; leave it out")
        groups = cell_groups(adata, model)
        members = []
        for k in range(n_members):
            member = model.untrained_copy()
            split = bootstrap_split(model.split, groups, seed=seed + k)
            member.train(split=split, seed=seed + k, loader="memory", **train_options)
            members.append(member)
        return cls(members)

    def _each_member(self, n_draws: int, seed: int, draw) -> list:
        """``draw(member, share, member_seed)`` for every member: ``n_draws`` shared out
        evenly (:func:`draw_shares`), member ``k`` seeded with ``seed + k``."""
        n_draws = validate.check_positive_int(n_draws, "n_draws")
        seed = validate.check_seed(seed)
        shares = draw_shares(n_draws, len(self))
        return [
            draw(member, share, seed + k)
            for k, (member, share) in enumerate(zip(self.members, shares, strict=True))
        ]

    def average_treatment_effect(
        self,
        perturbations: Sequence[str] | None = None,
        *,
        n_draws: int = 10,
        seed: int = 0,
        return_draws: bool = False,
        **options,
    ) -> pd.DataFrame | tuple[pd.DataFrame, np.ndarray]:
        """The members' :meth:`~PerturbationModel.average_treatment_effect` draws pooled:
        ``n_draws`` in all, shared evenly, member ``k`` seeded with ``seed + k``.

        ``options`` (``context``, ``n_cells``, ``by_context``, ``basal``,
        ``adata_controls``) are passed to every member. Returns the mean over all draws,
        and with ``return_draws`` the draws too (draws x rows x genes, member by member).
        """
        parts = self._each_member(
            n_draws,
            seed,
            lambda member, share, member_seed: member.average_treatment_effect(
                perturbations, n_draws=share, seed=member_seed, return_draws=True, **options
            ),
        )
        draws = np.concatenate([part[1] for part in parts])
        first = parts[0][0]
        mean = pd.DataFrame(draws.mean(axis=0), index=first.index, columns=first.columns)
        return (mean, draws) if return_draws else mean

    def check_ate(
        self,
        adata: ad.AnnData | None = None,
        *,
        splits: pd.Series | dict | None = None,
        level: float = 0.9,
        top_n: int = 20,
        n_draws: int = 100,
        seed: int = 0,
        **options,
    ) -> ATECheck:
        """:meth:`~PerturbationModel.check_ate` with the members' draws pooled.

        ``n_draws`` are shared evenly between the members, member ``k`` seeded with
        ``seed + k``; its point estimate is the mean of all draws and its intervals the
        quantiles of the pooled draws (the bagged posterior). ``options`` (``reference``,
        ``reference_se``, ``by_context``, ``basal``, ``adata_controls``, ``n_cells``,
        ``batch_size``, ``progress``) are passed to every member; ``splits`` default to
        those of the first member's data.
        """
        parts = self._each_member(
            n_draws,
            seed,
            lambda member, share, member_seed: member.ate_check_draws(
                adata, n_draws=share, seed=member_seed, **options
            ),
        )
        return pool_ate_draws(parts).summarise(
            splits=self.members[0].condition_splits(splits), level=level, top_n=top_n
        )

    def save(self, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
        """Write the members to ``path/member_<k>`` and a manifest, atomically."""
        with atomic_directory(path, overwrite=overwrite) as tmp:
            for k, member in enumerate(self.members):
                member.save(tmp / f"member_{k}")
            manifest = {"n_members": len(self), "samsvae_plus_version": __version__}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        return Path(path)

    @classmethod
    def load(
        cls, path: str | os.PathLike, adata: ad.AnnData | None = None, *, device: str = "cpu"
    ) -> BootstrapEnsemble:
        """Restore an ensemble written by :meth:`save` (``adata`` as in
        :meth:`PerturbationModel.load`)."""
        path = Path(path)
        if not (path / MANIFEST).is_file():
            raise InputError(f"{path} holds no {MANIFEST}; it is not a saved bootstrap ensemble")
        n_members = int(json.loads((path / MANIFEST).read_text())["n_members"])
        return cls(
            [
                PerturbationModel.load(path / f"member_{k}", adata=adata, device=device)
                for k in range(n_members)
            ]
        )
