"""Entry point of ``samsvae-plus``.

Each subcommand lives in its own module of this package and exposes
``add_parser(subparsers)`` and ``run(args) -> int``. :class:`~samsvae_plus.errors.InputError`
becomes a one-line message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from samsvae_plus._version import __version__
from samsvae_plus.errors import DivergenceError, InputError

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


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other CLI error
    (argparse would print the whole usage block first); ``--help`` shows the usage."""

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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except InputError as err:
        print(f"samsvae-plus {args.command}: error: {err}", file=sys.stderr)
        return 2
    except DivergenceError as err:
        print(f"samsvae-plus {args.command}: training stopped: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"samsvae-plus {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
