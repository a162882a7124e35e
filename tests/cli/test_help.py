"""``--help`` of every subcommand shows each option's default and choices, and
``--verbosity`` sets what the command logs."""

import argparse
import logging

import pytest

import samsvae_plus as sp
from samsvae_plus.cli.main import SUBCOMMANDS, HelpFormatter, build_parser, main, subcommand_parser

COMMANDS = [name.replace("_", "-") for name in SUBCOMMANDS]


def options(command: str) -> list[argparse.Action]:
    parser = subcommand_parser(build_parser(), command)
    return [a for a in parser._actions if a.option_strings and a.dest != "help"]


def flat_help(command: str) -> str:
    """The help text with its line breaks undone, so that wrapped phrases can be found."""
    return " ".join(subcommand_parser(build_parser(), command).format_help().split())


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_says_what_it_does_and_shows_its_default(command):
    formatter = HelpFormatter(command)
    for action in options(command):
        assert action.help, f"{command} {action.option_strings[0]} has no help"
        if action.required or action.default in (None, False, []):
            continue
        shown = formatter._get_help_string(action)
        assert "%(default)" in shown or "(default" in shown, (command, action.option_strings)
        if "%(default)" in shown:
            assert f"(default: {action.default})" in flat_help(command), action.option_strings


@pytest.mark.parametrize("command", COMMANDS)
def test_every_choice_is_listed(command):
    text = flat_help(command)
    for action in options(command):
        if action.choices:
            assert "{" + ",".join(map(str, action.choices)) + "}" in text, action.option_strings


def test_the_command_line_defaults_are_shown_as_in_force():
    """train's seed is 0 on the command line (not sp.settings.seed); demo trains with the
    package defaults, as train does; the shown value is the one argparse fills in."""
    assert "the batches and every sample (default: 0)" in flat_help("train")
    assert "dense start included (default: 400)" in flat_help("train")
    assert "dense start included (default: 400)" in flat_help("demo")
    assert "--split {train,validation,test,all}" in flat_help("evaluate")
    assert "--verbosity {error,warning,info,debug}" in flat_help("score")


def test_descriptions_wrap_but_listings_keep_their_lines():
    text = subcommand_parser(build_parser(), "reproduce").format_help()
    assert "\n  t1_models_guides " in text
    train = subcommand_parser(build_parser(), "train").format_help()
    assert max(len(line) for line in train.splitlines() if "Register" in line) <= 100


def test_verbosity_sets_the_log_level_for_the_command_only(monkeypatch, caplog):
    import samsvae_plus.cli.simulate as simulate

    before = sp.settings.verbosity
    seen = []

    def run(args):
        seen.append(sp.settings.verbosity)
        logging.getLogger("samsvae_plus.cli.test").info("said")
        return 0

    monkeypatch.setattr(simulate, "run", run)  # the parser is built inside main
    with caplog.at_level(logging.DEBUG):
        assert main(["simulate", "--out", "x.h5ad", "--verbosity", "warning"]) == 0
        assert main(["simulate", "--out", "x.h5ad"]) == 0
    assert seen == ["warning", "info"]
    assert [r.getMessage() for r in caplog.records] == ["said"]  # only at info
    assert sp.settings.verbosity == before


def test_a_command_restores_a_log_level_that_has_no_name(monkeypatch):
    import samsvae_plus.cli.simulate as simulate

    monkeypatch.setattr(simulate, "run", lambda args: 0)
    package_logger = logging.getLogger("samsvae_plus")
    before = package_logger.level
    package_logger.setLevel(25)  # set by the application, between info and warning
    try:
        assert main(["simulate", "--out", "x.h5ad"]) == 0
        assert package_logger.level == 25
    finally:
        package_logger.setLevel(before)
