"""Figures and optional reports that never cost a command the metrics it has computed.

A command's output directory is written atomically, so one exception while it is filled
throws away everything, including metrics that took minutes. The rule of the commands that
write reports (``train``, ``evaluate``, ``demo``): a figure or optional report that fails
is logged as a warning naming it and the error, the command writes everything else, and
its summary line names what is missing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class OptionalOutputs:
    """The optional parts of one command's output, and the ones that failed.

    Parameters
    ----------
    command
        The subcommand, for the warnings.
    """

    def __init__(self, command: str) -> None:
        self.command = command
        self.failed: dict[str, str] = {}

    def attempt(self, name: str, action: Callable[[], T]) -> T | None:
        """Run ``action`` and return its result; if it raises, log a warning naming
        ``name`` and the error, record it in :attr:`failed` and return ``None``."""
        try:
            return action()
        except Exception as err:  # any failure of an optional part; interrupts still stop
            text = str(err).strip().splitlines()
            error = f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
            logger.warning(
                "samsvae-plus %s: %s was not written (%s); the other outputs are written",
                self.command,
                name,
                error,
            )
            self.failed[name] = error
            return None

    def figure(self, directory: str | os.PathLike, name: str, draw: Callable[[], object]) -> bool:
        """Draw a figure with ``draw`` (which returns it) and save it to ``directory/name``
        with :func:`~samsvae_plus.plotting.save_figure`; ``False`` if that failed."""
        import matplotlib.pyplot as plt

        from samsvae_plus.plotting import save_figure

        def draw_and_save() -> bool:
            before = set(plt.get_fignums())
            try:
                figure = draw()
            except BaseException:
                for number in set(plt.get_fignums()) - before:  # a half-drawn figure
                    plt.close(number)
                raise
            save_figure(figure, Path(directory) / name)
            return True

        return self.attempt(name, draw_and_save) is not None

    def summary(self) -> str:
        """Text for the end of the summary line: empty, or what was not written."""
        if not self.failed:
            return ""
        return f" (not written: {', '.join(self.failed)}; see the warnings above)"
