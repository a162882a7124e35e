"""Command-line flags derived from the typed option records of the library.

A flag takes its name, type, default, help and choices from a dataclass field (the model
configurations of :mod:`samsvae_plus.module.config`, the encoder's
:class:`~samsvae_plus.nn.encoder_options.EncoderOptions`,
:class:`~samsvae_plus.inference.training_options.TrainingOptions`), so that a default
changed there changes here too. ``latent_dim`` becomes ``--latent-dim``; a boolean that is
off by default becomes a switch (``--basal-sees-shift``), one that is on a negated switch
(``--no-progress``, kept as ``no_progress``). ``--help`` shows the default in force (a
command may set its own) through the parser's formatter
(:class:`~samsvae_plus.cli.main.HelpFormatter`), and the choices as argparse does.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from dataclasses import MISSING, Field
from typing import Any

SCALARS = {"int": int, "float": float, "str": str, "bool": bool}


def flag_type(annotation: str) -> type:
    """The scalar a flag parses, from a field's annotation (a string under PEP 563): the
    first of ``int``, ``float``, ``str`` in a union such as ``int | None``; ``str`` for
    anything else a command line can only give as text (paths, devices, tables)."""
    for part in annotation.split("|"):
        if part.strip() in SCALARS:
            return SCALARS[part.strip()]
    return str


def add_options(
    group: argparse._ActionsContainer,
    candidates: Iterable[Field],
    names: Sequence[str],
    *,
    check_choices: bool,
    defaults: dict[str, Any] | None = None,
) -> None:
    """Add a flag for each field of ``candidates`` named in ``names``, in that order.

    Parameters
    ----------
    group
        The parser or argument group to add to.
    candidates
        Dataclass fields with ``help`` (and optionally ``choices``) in their metadata.
    names
        Which of them become flags.
    check_choices
        Let argparse refuse a value outside the choices; otherwise the choices are only
        shown, and the library refuses a bad value with its own message.
    defaults
        Command-line defaults that differ from the fields' own.
    """
    fields = {f.name: f for f in candidates}
    defaults = defaults or {}
    for name in names:
        f = fields[name]
        default = defaults.get(name, _default(f))
        help_text = f.metadata["help"]
        if _negated(f):
            group.add_argument(
                _flag("no_" + name),
                dest="no_" + name,
                action="store_true",
                help=f.metadata.get("negative_help", f"not: {help_text}"),
            )
            continue
        if flag_type(f.type) is bool:
            group.add_argument(_flag(name), action="store_true", help=help_text)
            continue
        options: dict[str, Any] = {"type": flag_type(f.type), "default": default}
        choices = [c for c in f.metadata.get("choices", ()) if c is not None]
        if choices and check_choices:
            options["choices"] = choices
        elif choices:
            options["metavar"] = "{" + ",".join(choices) + "}"
        group.add_argument(_flag(name), help=help_text, **options)


def option_values(
    args: argparse.Namespace, candidates: Iterable[Field], names: Sequence[str]
) -> dict[str, Any]:
    """The parsed values of the flags :func:`add_options` made, as keyword arguments of
    the library (negated switches turned back)."""
    fields = {f.name: f for f in candidates}
    return {
        name: not getattr(args, "no_" + name) if _negated(fields[name]) else getattr(args, name)
        for name in names
    }


def _default(f: Field) -> Any:
    return None if f.default is MISSING else f.default


def _negated(f: Field) -> bool:
    """A boolean on by default: its flag turns it off."""
    return flag_type(f.type) is bool and bool(_default(f))


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")
