"""pyproject.toml declares what the package imports, and requires nothing it does not."""

import ast
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
# import name -> distribution name, where they differ
DISTRIBUTIONS = {"yaml": "pyyaml", "esm": "fair-esm", "pyro": "pyro-ppl"}


def _name(requirement: str) -> str:
    for separator in "<>=!~;[ ":
        requirement = requirement.split(separator)[0]
    return requirement.strip().lower()


def _imported() -> dict[str, set[str]]:
    """Third-party distributions imported by the package -> the files importing them."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "samsvae_plus").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top == "samsvae_plus":
                    continue
                name = DISTRIBUTIONS.get(top, top).lower()
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_every_import_is_declared():
    project = _project()
    declared = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        declared |= {_name(r) for r in extra}
    missing = {name: files for name, files in _imported().items() if name not in declared}
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_every_required_dependency_is_imported():
    unused = {_name(r) for r in _project()["dependencies"]} - set(_imported())
    assert not unused, f"required in pyproject.toml but never imported: {unused}"


def test_pyyaml_is_an_extra_that_ci_installs():
    extras = _project()["optional-dependencies"]
    assert "pyyaml" not in {_name(r) for r in _project()["dependencies"]}
    assert "pyyaml" in {_name(r) for r in extras["experiments"]}
    assert "pyyaml" in {_name(r) for r in extras["dev"]}  # CI installs .[dev,esm]
