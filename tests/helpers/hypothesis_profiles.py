"""Hypothesis profiles: ``ci`` runs every fuzz test's full count, ``dev`` only a few examples.

The environment variable ``SAMSVAE_HYPOTHESIS_PROFILE`` picks the profile. Without it the
profile is ``ci``, so CI and a plain ``pytest`` keep the full coverage; ``dev`` is for the
inner loop while working on input validation::

    SAMSVAE_HYPOTHESIS_PROFILE=dev pytest tests/model/test_fuzz.py

Each fuzz test names its own count (``@settings(max_examples=examples(600), ...)``), and an
explicit ``max_examples`` overrides any profile; :func:`examples` is what makes the
profile reach those tests.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

PROFILE_VARIABLE = "SAMSVAE_HYPOTHESIS_PROFILE"
DEFAULT_PROFILE = "ci"
DEV_EXAMPLES = 10
PROFILES = ("ci", "dev")


def active_profile() -> str:
    """The profile named by ``SAMSVAE_HYPOTHESIS_PROFILE``, ``ci`` when it is unset.

    Returns
    -------
    str
        ``"ci"`` or ``"dev"``.

    Raises
    ------
    pytest.UsageError
        If the variable names another profile.
    """
    name = os.environ.get(PROFILE_VARIABLE, DEFAULT_PROFILE)
    if name not in PROFILES:
        raise pytest.UsageError(
            f"{PROFILE_VARIABLE} must be one of {', '.join(map(repr, PROFILES))}, got {name!r}"
        )
    return name


def load_profile() -> None:
    """Register the ``dev`` profile and load the active one.

    ``ci`` is Hypothesis's built-in profile of that name (derandomized, no example
    database, no deadline); ``dev`` is the same with :data:`DEV_EXAMPLES` examples.
    """
    settings.register_profile("dev", settings.get_profile("ci"), max_examples=DEV_EXAMPLES)
    settings.load_profile(active_profile())


def examples(ci_count: int) -> int:
    """The number of examples a fuzz test runs under the active profile.

    Parameters
    ----------
    ci_count
        The test's count under ``ci``, the one CI runs.

    Returns
    -------
    int
        ``ci_count`` under ``ci``; at most :data:`DEV_EXAMPLES` under ``dev``.
    """
    if active_profile() == "ci":
        return ci_count
    return min(ci_count, DEV_EXAMPLES)
