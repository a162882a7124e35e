"""samsvae_plus: sparse additive mechanism shift VAEs for Perturb-seq, written in Pyro."""

from samsvae_plus import metrics
from samsvae_plus import plotting as pl
from samsvae_plus._version import __version__
from samsvae_plus.data import datasets
from samsvae_plus.data.registry import setup_anndata
from samsvae_plus.errors import DivergenceError, InputError
from samsvae_plus.model import SAMSVAE
from samsvae_plus.settings import settings

__all__ = [
    "__version__",
    "DivergenceError",
    "InputError",
    "SAMSVAE",
    "datasets",
    "metrics",
    "pl",
    "settings",
    "setup_anndata",
]
