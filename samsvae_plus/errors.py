"""The package's error types.

Every problem a user can fix (a malformed AnnData, an unknown perturbation, a checkpoint
from another version) raises :class:`InputError` with a one-line message naming the
problem and the fix. The CLI turns it into exit code 2 without a traceback, so nothing
else may subclass it for internal failures.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any


class InputError(ValueError):
    """Bad input that the user can fix; the message says what is wrong and how to fix it."""


class MissingDataFileError(InputError):
    """A data file is in neither the data directory nor the download cache; the message
    names it, the variable ``SAMSVAE_PLUS_DATA`` and how to get the file."""


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or gradient; the last good state was kept."""


def check_choice(name: str, value: Any, allowed: Collection) -> Any:
    """Return ``value`` if it is one of ``allowed``; otherwise raise an :class:`InputError`
    that lists the choices."""
    if value not in allowed:
        raise InputError(f"{name}={value!r} is not available; choose one of {list(allowed)}")
    return value
