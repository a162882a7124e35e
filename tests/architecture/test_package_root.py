"""The package root holds the layer folders and a few cross-cutting modules, nothing else."""

from __future__ import annotations

from helpers.package_modules import package_modules

# Cross-cutting modules every layer may use, the public facades, and private helpers; anything
# else belongs in a layer folder (docs/architecture.md).
ROOT_MODULES = {"settings", "errors", "plotting", "metrics", "_version", "_atomic"}


def test_only_the_cross_cutting_modules_sit_at_the_package_root():
    root = {
        info.name.removeprefix("samsvae_plus.")
        for info in package_modules()
        if not info.ispkg and info.name.count(".") == 1
    }
    assert root <= ROOT_MODULES, (
        f"modules at the package root that belong in a layer folder: {sorted(root - ROOT_MODULES)}"
    )


def test_the_walk_finds_nested_modules_and_compiled_ones():
    """The check above is only as good as the walk it relies on."""
    names = {info.name for info in package_modules()}
    assert {"samsvae_plus.settings", "samsvae_plus.data", "samsvae_plus.nn.mlp"} <= names
    assert "samsvae_plus.challenge.rank_stats" in names
