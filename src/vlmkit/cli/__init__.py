"""The `vlmkit` command line: one typer app assembled from one module per area.

Each area module only imports typer at import time; torch/transformers are imported inside the
command bodies, so `vlmkit --help` stays fast. Every command is a thin layer over a library function.
"""

from __future__ import annotations

import sys

import typer

from ..errors import VlmkitError, disk_full_message
from . import data, ensemble, evaluate, infer, models, quickstart, serve, sweep, train

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


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors print one clear line and exit 2, never a traceback."""
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
    except OSError as exc:  # a full disk is the user's to fix, said in one line
        message = disk_full_message(exc)
        if message is None:
            raise
        typer.secho(f"error: {message}", err=True, fg="red")
        sys.exit(2)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        raise
