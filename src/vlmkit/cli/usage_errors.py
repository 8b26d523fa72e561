"""How the CLI answers a usage mistake (unknown verb or option, missing or badly typed value, unknown choice).

`vlmkit.cli.main` runs the typer app with standalone_mode=False, so click's usage errors reach it as
exceptions instead of being printed. This module prints them the way click does in standalone mode, plus a
"did you mean" for near misses: the usage line, the `--help` hint and one `Error:` line. Exit status 2.
"""

from __future__ import annotations

import difflib
import re
import sys
from typing import IO, Any

# Click's choice error, as typer words it: "Value error, 'inf' is not one of 'info', 'debug'."
_CHOICE = re.compile(r"(?P<value>'[^']*') is not one of (?P<choices>'.*')\.?$")


def is_usage_error(exc: BaseException) -> bool:
    """A click/typer exception meant to be shown to the user (typer vendors click; plain click also counts)."""
    import typer

    if isinstance(exc, typer.TyperException):
        return True
    try:
        import click
    except ImportError:  # pragma: no cover - typer no longer needs click
        return False
    return isinstance(exc, click.ClickException)


def show_usage_error(exc: Any, file: IO[str] | None = None) -> int:
    """Print `exc` (a click/typer usage error) as usage line, help hint and one `Error:` line; return its
    exit status."""
    file = file or sys.stderr
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError":  # a group called without a verb: its help says it all
        exc.show()
        return exc.exit_code
    if ctx is not None:
        file.write(f"{ctx.get_usage()}\nTry '{ctx.command_path} --help' for help.\n\n")
    file.write(f"Error: {error_line(exc)}\n")
    file.flush()
    return getattr(exc, "exit_code", 2)


def error_line(exc: Any) -> str:
    """The one-line message, with a suggestion for a near-miss option or choice."""
    possibilities = getattr(exc, "possibilities", None)
    if getattr(exc, "option_name", None) and possibilities is not None:  # NoSuchOption
        return exc.message + _did_you_mean(_closest(exc.option_name, possibilities))
    message = " ".join(exc.format_message().replace("Value error, ", "").split())
    bad_input = _bad_input(exc)
    if bad_input is not None and repr(bad_input) not in message:
        message += f" (got {bad_input!r})"
    choice = _CHOICE.search(message)
    if choice:
        value = choice["value"].strip("'")
        choices = re.findall(r"'([^']*)'", choice["choices"])
        suggestion = _did_you_mean(_closest(value, choices))
        message = message.rstrip(".") + suggestion if suggestion else message
    return message


def _closest(word: str, candidates: Any) -> str | None:
    """The one near miss worth suggesting (click's own candidates go down to loose matches like --out for
    --bogus)."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.75)
    return matches[0] if matches else None


def _did_you_mean(option: str | None) -> str:
    return f". Did you mean '{option}'?" if option else ""


def _bad_input(exc: Any) -> Any:
    """The value a type check rejected: typer validates with pydantic, whose error carries the input."""
    cause = exc.__cause__
    try:
        errors = cause.errors() if cause is not None and hasattr(cause, "errors") else None
    except Exception:  # not a pydantic ValidationError after all
        return None
    return errors[0].get("input") if errors and isinstance(errors[0], dict) else None
