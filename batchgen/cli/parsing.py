"""The argument parser every command uses: no abbreviations, defaults in the help, typed
numbers whose errors name the flag, and errors that never echo a value.

``allow_abbrev`` is off: with it, ``--api-key KEY`` was taken for ``--api-key-file`` and
the key printed in the error, into cron logs. Subparsers inherit the class, so they are
built the same way.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from batchgen import errors
from batchgen.report.logs import LOG_FORMATS

# Flags people try for a key; each is refused, never read. README "Keys".
KEY_FLAGS = ("--api-key", "--apikey", "--api_key", "--key", "--segmind-api-key")
KEY_REFUSED = ("an API key is never taken on the command line (it would show in the process "
               "list and shell history): set SEGMIND_API_KEY or pass --api-key-file FILE")
_UNRECOGNIZED = "unrecognized arguments: "


class ArgumentsError(errors.UsageError):
    """Raised instead of argparse's exit on a bad command line; ``usage`` is the
    command's usage line."""

    def __init__(self, message: str, *, usage: str) -> None:
        self.usage = usage
        super().__init__(message)


class HelpFormatter(argparse.HelpFormatter):
    """Shows ``(default: X)`` for flags whose default is a value (not None, False or a
    count)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("%(default)" in text or not action.option_strings or default is None
                or default is False or default is argparse.SUPPRESS
                or isinstance(action, argparse._CountAction)):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` without abbreviations, raising ``ArgumentsError``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise ArgumentsError(f"{self.prog}: error: {redact(message)}",
                             usage=self.format_usage())


def redact(message: str) -> str:
    """argparse's message with unrecognized values left out: one may be a key."""
    if not message.startswith(_UNRECOGNIZED):
        return message
    words = message.removeprefix(_UNRECOGNIZED).split()
    flags = [w.split("=", 1)[0] for w in words if w.startswith("-")]
    hidden = sum(1 for w in words if not w.startswith("-") or "=" in w)
    shown = " ".join(flags) or "-"
    tail = f" ({hidden} value{'s' if hidden > 1 else ''} not shown)" if hidden else ""
    return f"{_UNRECOGNIZED}{shown}{tail}"


class _RefuseKey(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        parser.error(f"{option_string}: {KEY_REFUSED}")


def refuse_key_flags(parser: argparse.ArgumentParser) -> None:
    """Make ``--api-key KEY`` and its look-alikes a usage error that echoes nothing."""
    parser.add_argument(*KEY_FLAGS, nargs="?", action=_RefuseKey, help=argparse.SUPPRESS)


def add_common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``-v`` and ``--log-format``, before or after the command name. The top-level
    parser's values and the command's are kept apart (``dest``) and added up in main."""
    prefix = "" if top else "sub_"
    parser.add_argument("-v", "--verbose", action="count", dest=f"{prefix}verbose", default=0,
                        help="more log output (-vv for debug)")
    parser.add_argument("--log-format", choices=LOG_FORMATS, dest=f"{prefix}log_format",
                        help="log lines on stderr: text, or JSON lines (one object per "
                        "event) (default: text)")


def _number(kind: Callable[[str], Any], name: str, *, minimum: float,
            inclusive: bool) -> Callable[[str], Any]:
    word = "at least" if inclusive else "greater than"

    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {name}: {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
        if not (value >= minimum if inclusive else value > minimum):
            raise argparse.ArgumentTypeError(f"must be {word} {minimum:g}, got {text}")
        return value

    convert.__name__ = name  # argparse names the type in some messages
    return convert


positive_int = _number(int, "a whole number", minimum=0, inclusive=False)
positive_float = _number(float, "a number", minimum=0, inclusive=False)
non_negative_int = _number(int, "a whole number", minimum=0, inclusive=True)
non_negative_float = _number(float, "a number", minimum=0, inclusive=True)


def wants_json(argv: Sequence[str]) -> bool:
    """Whether the command line asks for JSON logs, read before parsing, so that even a
    usage error is reported as a JSON line."""
    for index, word in enumerate(argv):
        if word == "--":
            return False
        if word == "--log-format=json" or (word == "--log-format"
                                           and argv[index + 1:index + 2] == ["json"]):
            return True
    return False
