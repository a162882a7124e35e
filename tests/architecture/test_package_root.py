"""The package root holds the layer folders and a few cross-cutting modules, nothing else."""

from __future__ import annotations

from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from helpers.package_modules import package_modules

import samsvae_plus

# Cross-cutting modules every layer may use, the public facades, and private helpers; anything
# else belongs in a layer folder (docs/architecture.md).
ROOT_MODULES = {"settings", "errors", "plotting", "metrics", "_version", "_atomic", "_logging"}


def test_only_the_cross_cutting_modules_sit_at_the_package_root():
    root = {
        info.name.removeprefix("samsvae_plus.")
        for info in package_modules()
        if not info.ispkg and info.name.count(".") == 1
    }
    assert root <= ROOT_MODULES, (
        f"modules at the package root that belong in a layer folder: {sorted(root - ROOT_MODULES)}"
    )


def test_the_walk_finds_nested_and_compiled_modules():
    """The checks on the package's modules are only as good as the walk they rely on."""
    names = {info.name for info in package_modules()}
    assert {"samsvae_plus.settings", "samsvae_plus.data", "samsvae_plus.data.registry"} <= names
    folder = Path(samsvae_plus.__file__).parent
    compiled = {path for suffix in EXTENSION_SUFFIXES for path in folder.rglob(f"*{suffix}")}
    for path in compiled:
        # a module name has no dots, so the first one starts the platform tag
        parts = path.relative_to(folder).with_name(path.name.split(".")[0]).parts
        assert ".".join(("samsvae_plus", *parts)) in names, path
