"""samsvae_plus: sparse additive mechanism shift VAEs for Perturb-seq, written in Pyro.

Public API: ``SAMSVAE`` (and ``CPAVAE``, ``SVAEPlus``, ``ConditionalVAE``),
``BootstrapEnsemble``, ``setup_anndata``, ``datasets``, ``pl``, ``metrics``, ``settings``,
``pretrain_encoder``. Modules that pull in torch, pyro or matplotlib load on first use, so light
entry points (``samsvae-plus score``, ``--help``) start in a fraction of a second.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from samsvae_plus._version import __version__
from samsvae_plus.errors import DivergenceError, InputError

# Imported eagerly, not lazily: importing the submodule `samsvae_plus.settings` (as the
# model code does) sets the package attribute `settings` to that module, which would hide
# the lazy lookup and make `sp.settings.seed = s` a silent no-op.
from samsvae_plus.settings import settings

# public name -> (module, attribute); attribute None means the module itself
_LAZY: dict[str, tuple[str, str | None]] = {
    "SAMSVAE": ("samsvae_plus.model.family", "SAMSVAE"),
    "CPAVAE": ("samsvae_plus.model.family", "CPAVAE"),
    "SVAEPlus": ("samsvae_plus.model.family", "SVAEPlus"),
    "ConditionalVAE": ("samsvae_plus.model.family", "ConditionalVAE"),
    "BootstrapEnsemble": ("samsvae_plus.model.ensemble", "BootstrapEnsemble"),
    "setup_anndata": ("samsvae_plus.data.registry", "setup_anndata"),
    "pretrain_encoder": ("samsvae_plus.inference.pretrain", "pretrain_encoder"),
    "datasets": ("samsvae_plus.data.datasets", None),
    "metrics": ("samsvae_plus.metrics", None),
    "pl": ("samsvae_plus.plotting", None),
}

__all__ = [
    "__version__",
    "DivergenceError",
    "InputError",
    "BootstrapEnsemble",
    "CPAVAE",
    "ConditionalVAE",
    "SAMSVAE",
    "SVAEPlus",
    "datasets",
    "metrics",
    "pl",
    "pretrain_encoder",
    "settings",
    "setup_anndata",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'samsvae_plus' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from samsvae_plus import metrics
    from samsvae_plus import plotting as pl
    from samsvae_plus.data import datasets
    from samsvae_plus.data.registry import setup_anndata
    from samsvae_plus.inference.pretrain import pretrain_encoder
    from samsvae_plus.model.ensemble import BootstrapEnsemble
    from samsvae_plus.model.family import CPAVAE, SAMSVAE, ConditionalVAE, SVAEPlus
