"""Entry point of ``samsvae-plus``.

Each subcommand lives in its own module of this package and exposes
``add_parser(subparsers)`` and ``run(args) -> int``. :class:`~samsvae_plus.errors.InputError`
becomes a one-line message on stderr and exit code 2, never a traceback, with the library's
keywords written as the command's flags (:mod:`~samsvae_plus.cli.flag_names`). Every
subcommand shows its defaults and choices in ``--help`` and takes ``--verbosity``; the
package's log and warnings go to stderr, one line each.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys
import textwrap
import warnings
from collections.abc import Iterator, Sequence

from samsvae_plus import _logging
from samsvae_plus._version import __version__
from samsvae_plus.cli.flag_names import in_flags
from samsvae_plus.errors import DivergenceError, InputError
from samsvae_plus.settings import settings

# Module names under samsvae_plus.cli, in the order `--help` lists them.
SUBCOMMANDS = [
    "demo",
    "simulate",
    "train",
    "predict",
    "pretrain",
    "evaluate",
    "score",
    "prep",
    "reproduce",
    "go_embedding",
]
# A command line is run by a person waiting for it: say what it does.
COMMAND_LINE_VERBOSITY = "info"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Help that shows each option's default (argparse shows choices itself), and keeps the
    line breaks of a description that has them (a listing) while wrapping one-line
    paragraphs to the terminal."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        shown_already = "%(default)" in text or "(default" in text
        nothing_to_show = default is None or default is False or default == []
        if shown_already or nothing_to_show or action.required or default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = text.split("\n\n")
        return "\n\n".join(
            paragraph
            if "\n" in paragraph
            else textwrap.fill(paragraph, width, initial_indent=indent, subsequent_indent=indent)
            for paragraph in paragraphs
        )


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other CLI error
    (argparse would print the whole usage block first); ``--help`` shows the usage, the
    defaults and the choices. Subcommands' parsers are of this class too."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="samsvae-plus",
        description="Sparse additive mechanism shift VAEs for Perturb-seq data.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"samsvae_plus.cli.{name}").add_parser(subparsers)
    for command in subparsers.choices.values():
        command.add_argument(
            "--verbosity",
            choices=list(_logging.LEVELS),
            default=COMMAND_LINE_VERBOSITY,
            help="which messages to show on stderr (sp.settings.verbosity)",
        )
    return parser


def subcommand_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of one subcommand of :func:`build_parser`'s parser."""
    (subparsers,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices[command]


@contextlib.contextmanager
def command_messages(verbosity: str, parser: argparse.ArgumentParser) -> Iterator[None]:
    """Show the package's log at ``verbosity``, and warnings as one log line each in the
    words of ``parser``'s flags, while a command runs; both are restored after it (tests
    run many commands in one process)."""
    log = logging.getLogger(_logging.LOGGER_NAME)
    # the level itself, not its name: a level set from outside may have none
    before = log.level
    settings.verbosity = verbosity

    def one_line(message, category, filename, lineno, file=None, line=None) -> None:
        log.warning("%s", in_flags(str(message).strip(), parser))

    try:
        with warnings.catch_warnings():
            warnings.showwarning = one_line
            yield
    finally:
        log.setLevel(before)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = subcommand_parser(parser, args.command)
    try:
        with command_messages(args.verbosity, command):
            return int(args.run(args) or 0)
    except InputError as err:
        message = in_flags(str(err), command)
        print(f"samsvae-plus {args.command}: error: {message}", file=sys.stderr)
        return 2
    except DivergenceError as err:
        print(f"samsvae-plus {args.command}: training stopped: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"samsvae-plus {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
