"""Library messages in the words of the command line.

The library's errors name its keyword arguments (``pass control_label= with the label of
unperturbed cells``, ``dense_epochs must be ...``). When such an error ends a command, the
user typed flags, so :func:`in_flags` rewrites each keyword the command exposes as its flag
(``pass --control-label with ...``, ``--dense-epochs must be ...``). Only keywords of the
command's own flags change; anything else in the message is left as written.
"""

from __future__ import annotations

import argparse
import ast
import re
import shlex

# A keyword's value as the library writes it: a list of labels, quoted text, or a bare
# token (a number, a name, True/False/None) up to the punctuation that ends it.
_VALUE = (
    r"""(?:\[(?P<list>[^\]]*)\]|'(?P<single>[^']*)'|"(?P<double>[^"]*)"|(?P<bare>[\w.+-]*[\w]))"""
)
# Not inside a longer name, an attribute, a subscript or a string.
_BEFORE = r"""(?<![\w.\[\]'"-])"""


def keyword_flags(parser: argparse.ArgumentParser) -> dict[str, tuple[str, bool, bool]]:
    """Library keyword -> (flag, whether the flag is a switch, whether it turns the keyword
    off) for each long option of ``parser`` (``--no-progress`` is the keyword ``progress``)."""
    flags = {}
    for action in parser._actions:
        long = [s for s in action.option_strings if s.startswith("--")]
        if not long or action.dest in (argparse.SUPPRESS, "help"):
            continue
        switch = action.nargs == 0
        negated = switch and action.dest.startswith("no_") and long[0].startswith("--no-")
        keyword = action.dest.removeprefix("no_") if negated else action.dest
        flags[keyword] = (long[0], switch, negated)
    return flags


def in_flags(message: str, parser: argparse.ArgumentParser) -> str:
    """``message`` with the keywords of ``parser``'s flags written as those flags.

    ``name=`` becomes ``--name``, ``name='v'`` ``--name v``, ``name=['a', 'b']``
    ``--name a b``, ``name=None`` ``no --name``;
    for a switch, ``name=True`` is ``--name`` and ``name=False`` ``no --name``
    (``--no-name`` for a switch that turns ``name`` off). A bare keyword with an underscore
    (``max_epochs must be ...``) becomes its flag too; one without (``device``, ``layer``)
    reads as an ordinary word, so only its ``=`` form changes. A flag the message already
    gives after the keyword (``control_label= / --control-label``) is not repeated.
    """
    for keyword, (flag, switch, negated) in keyword_flags(parser).items():

        def with_value(match: re.Match, flag=flag, switch=switch, negated=negated) -> str:
            if match.group("list") is not None:
                return " ".join([flag, *map(shlex.quote, _items(match.group("list")))])
            value = match.group("single")
            if value is None:
                value = match.group("double")
            if value is None:
                value = match.group("bare")
            if value is None:
                return flag
            if value == "None" and match.group("bare"):
                return f"no {flag}"
            if switch and value in ("True", "False"):
                return flag if (value == "True") != negated else f"no {flag}"
            return f"{flag} {shlex.quote(value)}"

        pattern = rf"{_BEFORE}{re.escape(keyword)}=(?:{_VALUE})?"
        message = re.sub(pattern, with_value, message)
        if "_" in keyword:
            message = re.sub(rf"{_BEFORE}{re.escape(keyword)}(?![\w'\"(\[=])", flag, message)
        escaped = re.escape(flag)
        message = re.sub(rf"{escaped}( / {escaped}| \({escaped}\))(?![\w-])", flag, message)
    return message


def _items(text: str) -> list[str]:
    """The items of a list the library wrote with ``repr`` (``'a', 'b'``), as text."""
    try:
        items = ast.literal_eval(f"[{text}]")
    except (ValueError, SyntaxError):
        return [text]
    return [str(item) for item in items]
