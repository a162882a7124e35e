"""The challenge scorer's optional C extension (``_rank_stats.c``): :data:`kernels`.

``pip install`` builds it where a C compiler is present (``optional = true`` in
``pyproject.toml``); without one, :data:`kernels` is None. Every caller reads the
attribute when it runs; without it the scorer takes its numpy path
(:func:`~samsvae_plus.challenge.summary.summarise_file_per_group`), which gives the same
numbers bit for bit, so tests switch the extension off by setting :data:`kernels` to None.
"""

from __future__ import annotations

try:
    from samsvae_plus.challenge import _rank_stats as kernels
except ImportError:  # built without a C compiler: the per-group numpy path serves
    kernels = None
