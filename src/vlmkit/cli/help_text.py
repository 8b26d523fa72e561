"""Help texts are shown as written: Rich markup in them is escaped once the app is assembled.

typer renders help with Rich, which reads `[qlora]` in "pip install 'vlmkit[qlora]'" as a style tag and drops it.
No vlmkit help text means markup, so every command's and option's help is escaped (rich.markup.escape), wherever
the option is declared: a default `typer.Option(...)`, or `Annotated[..., typer.Option(...)]`.
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

import typer
from typer.models import ParameterInfo


def escape_markup(app: typer.Typer) -> None:
    """Escape Rich markup in the help of every command, group and parameter of `app` (and its sub-apps)."""
    _escape_app(app, seen=set())


def _escape_app(app: typer.Typer, seen: set[int]) -> None:
    info = app.info
    if isinstance(info.help, str):
        info.help = _escape(info.help)
    for command in app.registered_commands:
        if isinstance(command.help, str):
            command.help = _escape(command.help)
        elif command.callback is not None and command.callback.__doc__ and id(command.callback) not in seen:
            seen.add(id(command.callback))
            command.callback.__doc__ = _escape(command.callback.__doc__)
        if command.callback is not None:
            _escape_parameters(command.callback, seen)
    for group in app.registered_groups:
        if isinstance(group.help, str):
            group.help = _escape(group.help)
        if group.typer_instance is not None:
            _escape_app(group.typer_instance, seen)
    if app.registered_callback is not None and app.registered_callback.callback is not None:
        _escape_parameters(app.registered_callback.callback, seen)


def _escape_parameters(callback: Any, seen: set[int]) -> None:
    try:
        hints = typing.get_type_hints(callback, include_extras=True)
    except Exception:  # unresolvable annotations: defaults are still checked
        hints = {}
    for name, parameter in inspect.signature(callback).parameters.items():
        candidates = [parameter.default, *getattr(hints.get(name), "__metadata__", ())]
        for info in candidates:
            # the same Option object may serve several commands (engine options): escape it once
            if isinstance(info, ParameterInfo) and isinstance(info.help, str) and id(info) not in seen:
                seen.add(id(info))
                info.help = _escape(info.help)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
