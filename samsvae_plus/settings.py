"""Global settings: one seed switch, the default device and the verbosity of the log.

>>> import samsvae_plus as sp
>>> sp.settings.seed = 0          # seeds random, numpy, torch and pyro together
>>> sp.settings.device = "auto"   # CUDA when present, else CPU
>>> sp.settings.verbosity = "info"  # say what training and the commands do
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING

from samsvae_plus import _logging

if TYPE_CHECKING:
    import torch

# numpy and torch are imported inside the functions: the package imports this module eagerly (see
# samsvae_plus/__init__.py), and light entry points must not pay for torch.


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"``/``None`` into CUDA when available, else CPU; pass others through."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's, torch's and Pyro's generators from one integer."""
    import numpy as np
    import pyro  # imported here so that `data/` can use settings without importing pyro
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    pyro.set_rng_seed(seed)


class Settings:
    """Package-wide settings; assigning ``seed`` reseeds every generator at once.

    Attributes
    ----------
    seed
        Seeds Python's, NumPy's, torch's and Pyro's generators when assigned; the default
        seed of ``train``.
    device
        The default device, ``"auto"`` for CUDA when present.
    verbosity
        Which messages of the ``samsvae_plus`` logger are shown: ``"error"``,
        ``"warning"`` (the default), ``"info"`` (training phases, early stopping, the steps
        of the commands, downloads) or ``"debug"``, or a ``logging`` level such as
        ``logging.INFO``. Reads back as the name. They go to stderr, or to the handlers of
        the root logger when the application has configured logging.
    """

    def __init__(self) -> None:
        self._seed: int | None = None
        self.device: str = "auto"
        _logging.install_default_handler()

    @property
    def seed(self) -> int | None:
        return self._seed

    @seed.setter
    def seed(self, value: int) -> None:
        seed_everything(int(value))
        self._seed = int(value)

    @property
    def verbosity(self) -> str:
        return _logging.verbosity_name(_logging.logger.level)

    @verbosity.setter
    def verbosity(self, value: int | str) -> None:
        _logging.set_verbosity(value)

    def __repr__(self) -> str:
        return f"Settings(seed={self._seed}, device={self.device!r}, verbosity={self.verbosity!r})"


settings = Settings()


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block on a forked torch generator seeded with ``seed``; the global stream is kept."""
    import torch

    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
