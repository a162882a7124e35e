"""The layer contract of pyproject.toml ([tool.importlinter]) holds: ``lint-imports`` passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]

# The `lint-imports` console script, run through this interpreter so that the test does not
# depend on the virtual environment's bin/ being on PATH (CI does not activate it).
LINT_IMPORTS = (
    "import sys; from importlinter.cli import lint_imports_command; "
    "sys.exit(lint_imports_command(prog_name='lint-imports'))"
)


def test_lint_imports_keeps_every_contract():
    # --no-cache: no .import_linter_cache left in the checkout.
    run = subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache", "--no-logo"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, f"lint-imports failed:\n{run.stdout}{run.stderr}"
