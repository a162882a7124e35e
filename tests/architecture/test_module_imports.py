"""Every module of the package imports on its own, in a fresh interpreter.

Importing a module first, before the package's other modules, is what exposes an import
cycle or a module that works only because something else was imported earlier.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers.package_modules import package_modules

pytestmark = pytest.mark.slow


def import_alone(name: str, folder: str) -> str | None:
    """Import ``name`` in a new interpreter; its error output, or None if it imported."""
    run = subprocess.run(
        [sys.executable, "-c", f"import {name}"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return None if run.returncode == 0 else run.stderr.strip()


def test_every_module_imports_on_its_own(tmp_path):
    names = [info.name for info in package_modules()]
    # Run from an empty folder, so that the installed package is imported, as in the parent.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        errors = list(pool.map(import_alone, names, [str(tmp_path)] * len(names)))
    failed = {name: error for name, error in zip(names, errors, strict=True) if error}
    assert not failed, "modules that fail to import on their own:\n" + "\n\n".join(
        f"import {name}:\n{error[-2000:]}" for name, error in failed.items()
    )
