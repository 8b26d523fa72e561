"""The `vlmkit` command line: one typer app assembled from one module per area.

Each area module only imports typer at import time; torch/transformers are imported inside the
command bodies, so `vlmkit --help` stays fast. Every command is a thin layer over a library function.
"""

from __future__ import annotations

import sys

import typer

from ..errors import VlmkitError, disk_full_message
from . import data, ensemble, evaluate, infer, models, quickstart, serve, sweep, train
from .help_text import escape_markup

app = typer.Typer(
    name="vlmkit",
    help="From a VQA dataset to a fine-tuned, evaluated and served vision-language model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

for area in (data, models, train, infer, evaluate, ensemble, sweep, serve, quickstart):
    area.register(app)
escape_markup(app)  # help texts are plain text: "vlmkit[qlora]" must not be read as a Rich style tag


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors print one clear line and exit 2, never a traceback; usage mistakes
    (unknown verb or option, missing or bad value) print the usage line, a suggestion and exit 2."""
    try:
        # standalone_mode=False hands typer.Exit codes back as a return value instead of exiting.
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except VlmkitError as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except (typer.Exit, typer.Abort) as exc:
        sys.exit(getattr(exc, "exit_code", 1))
    except OSError as exc:  # a full disk is the user's to fix, said in one line
        message = disk_full_message(exc)
        if message is None:
            raise
        typer.secho(f"error: {message}", err=True, fg="red")
        sys.exit(2)
    except Exception as exc:
        from .usage_errors import is_usage_error, show_usage_error

        if is_usage_error(exc):
            sys.exit(show_usage_error(exc))
        if type(exc).__name__ in ("Exit", "Abort"):  # plain click's, should a command raise them
            sys.exit(getattr(exc, "exit_code", 1))
        raise
