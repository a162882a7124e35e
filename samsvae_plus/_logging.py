"""The ``samsvae_plus`` logger and its verbosity (``sp.settings.verbosity``).

Every module logs through ``logging.getLogger(__name__)``, a child of the package logger
``"samsvae_plus"``; the verbosity is that logger's level. Records always propagate, so an
application that configures logging (or pytest's ``caplog``) receives them. For everyone
else, the package logger carries one :class:`DefaultHandler` that writes to stderr, as
scanpy's and scvi-tools' loggers do; it stands aside while the root logger has handlers of
its own, so that a configured application never sees a message twice.
"""

from __future__ import annotations

import logging
import sys

from samsvae_plus.errors import InputError

LOGGER_NAME = "samsvae_plus"
# The Python default: warnings only. The command line asks for "info" (cli/main.py).
DEFAULT_VERBOSITY = "warning"
LEVELS = {
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}

logger = logging.getLogger(LOGGER_NAME)


class DefaultHandler(logging.Handler):
    """Write records to the current ``sys.stderr``, clear of any progress bar, unless the
    root logger has handlers (then the records reach them by propagation instead).

    ``sys.stderr`` is looked up on each record, not kept, so redirections (pytest's
    ``capsys``, ``contextlib.redirect_stderr``) apply.
    """

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:
            return
        try:
            message = self.format(record)
            tqdm = sys.modules.get("tqdm")
            if tqdm is not None:
                # tqdm.write clears any running bar, writes the line and draws the bar again
                tqdm.tqdm.write(message, file=sys.stderr)
            else:
                sys.stderr.write(message + "\n")
        except Exception:
            self.handleError(record)


class _Formatter(logging.Formatter):
    """Information as plain sentences; warnings and errors led by their level, as scanpy
    shows them."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"{record.levelname}: {message}"
        return message


def parse_verbosity(value: int | str) -> int:
    """The ``logging`` level of a verbosity: a level (``logging.INFO``, 20) or its name
    (``"info"``, any case).

    Raises
    ------
    InputError
        For anything else.
    """
    if isinstance(value, str) and value.lower() in LEVELS:
        return LEVELS[value.lower()]
    if isinstance(value, int) and not isinstance(value, bool) and value in LEVELS.values():
        return value
    raise InputError(
        f"verbosity {value!r} is not a level; pass one of {list(LEVELS)} or a logging level "
        "such as logging.INFO"
    )


def verbosity_name(level: int) -> str:
    """The lower-case name of a level (``logging``'s own for one set from outside)."""
    return logging.getLevelName(level).lower()


def set_verbosity(value: int | str) -> None:
    """Show the package's messages from level ``value`` up."""
    logger.setLevel(parse_verbosity(value))


def install_default_handler() -> None:
    """Give the package logger its :class:`DefaultHandler` once, at the default verbosity."""
    if any(isinstance(h, DefaultHandler) for h in logger.handlers):
        return
    handler = DefaultHandler()
    handler.setFormatter(_Formatter())
    logger.addHandler(handler)
    set_verbosity(DEFAULT_VERBOSITY)
