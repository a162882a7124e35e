"""The modules of ``samsvae_plus``, found on disk without importing any of them."""

from __future__ import annotations

import pkgutil
from pathlib import Path

import samsvae_plus


def package_modules(
    path: list[str] | None = None, prefix: str = "samsvae_plus."
) -> list[pkgutil.ModuleInfo]:
    """Every module and subpackage under ``path``, depth first, with full dotted names.

    Unlike ``pkgutil.walk_packages``, this imports nothing (so an import error cannot hide a
    module) and lists compiled extensions as well as ``.py`` files.

    Parameters
    ----------
    path
        Directories of a package; the installed ``samsvae_plus`` by default.
    prefix
        Dotted name of that package, with a trailing dot.

    Returns
    -------
    list of pkgutil.ModuleInfo
        One entry per module or subpackage, ``name`` fully qualified.
    """
    found = []
    for info in pkgutil.iter_modules(path or list(samsvae_plus.__path__), prefix):
        found.append(info)
        if info.ispkg:
            folder = Path(info.module_finder.path) / info.name.rpartition(".")[2]
            found.extend(package_modules([str(folder)], info.name + "."))
    return found
