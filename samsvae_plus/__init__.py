"""samsvae_plus: sparse additive mechanism shift VAEs for Perturb-seq, written in Pyro."""

from samsvae_plus._version import __version__
from samsvae_plus.settings import settings

__all__ = ["__version__", "settings"]
