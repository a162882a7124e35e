"""The samsvae_plus logger: sp.settings.verbosity, and the default handler that writes to
stderr unless the application has configured logging."""

import logging
import subprocess
import sys

import pytest

import samsvae_plus as sp
from samsvae_plus import _logging
from samsvae_plus.errors import InputError

log = logging.getLogger("samsvae_plus.tests")


@pytest.fixture()
def verbosity():
    before = sp.settings.verbosity
    yield
    sp.settings.verbosity = before


@pytest.mark.parametrize(
    "value, name",
    [("info", "info"), ("DEBUG", "debug"), (logging.ERROR, "error"), ("Warning", "warning")],
)
def test_verbosity_takes_names_and_levels_and_reads_back_the_name(verbosity, value, name):
    sp.settings.verbosity = value
    assert sp.settings.verbosity == name
    assert logging.getLogger("samsvae_plus").level == _logging.LEVELS[name]
    assert f"verbosity={name!r}" in repr(sp.settings)


@pytest.mark.parametrize("value", [3, "loud", True, None, 25])
def test_a_bad_verbosity_is_a_one_line_error(verbosity, value):
    with pytest.raises(InputError, match=r"verbosity .* is not a level; pass one of \['error'"):
        sp.settings.verbosity = value


def test_the_default_handler_shows_messages_from_the_verbosity_up(verbosity, monkeypatch, capsys):
    # the root logger of an application that configured no logging (pytest adds handlers
    # of its own for each test)
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    sp.settings.verbosity = "warning"
    log.info("hidden")
    log.warning("shown")
    sp.settings.verbosity = "info"
    log.info("now shown too")
    monkeypatch.undo()
    assert capsys.readouterr().err == "WARNING: shown\nnow shown too\n"


def test_a_configured_application_gets_each_record_once(verbosity, capsys, caplog):
    """pytest's own handlers on the root logger stand for an application's logging set-up:
    the records reach them, and the default handler stays silent."""
    sp.settings.verbosity = "info"
    with caplog.at_level(logging.INFO):
        log.info("once")
    assert [r.getMessage() for r in caplog.records] == ["once"]
    assert capsys.readouterr().err == ""


def test_python_users_see_warnings_only_by_default():
    code = (
        "import logging, samsvae_plus as sp; print(sp.settings.verbosity); "
        "logging.getLogger('samsvae_plus.x').info('i'); "
        "logging.getLogger('samsvae_plus.x').warning('w')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout == "warning\n" and result.stderr == "WARNING: w\n"
