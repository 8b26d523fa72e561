"""Importers: one module per source format, each a Converter from a raw record to Samples.

`import_dataset` (runner.py) is the entry point; `CONVERTERS` is the registry that `--format` names.
Adding a format = one module with a Converter subclass + one line here.
"""

from __future__ import annotations

from typing import Any

from ...errors import DataError
from .base import Converter, ImportOptions, RecordError
from .chartqa import ChartQA
from .docvqa import DocVQA
from .infovqa import InfoVQA
from .llava import LLaVA
from .lmms_choice import LmmsChoice
from .samples import Samples
from .sharegpt import ShareGPT
from .textvqa import TextVQA
from .video_captions import VideoCaptions
from .vitextvqa import ViTextVQA
from .vizwiz import VizWiz
from .vlmevalkit import VLMEvalKit

# Order matters for --format auto: the more specific key sets are tried first.
CONVERTERS: dict[str, Converter] = {
    c.name: c
    for c in (
        VLMEvalKit(),
        LmmsChoice(),
        ViTextVQA(),
        Samples(),
        ShareGPT(),
        LLaVA(),
        InfoVQA(),
        DocVQA(),
        ChartQA(),
        VizWiz(),
        TextVQA(),
        VideoCaptions(),
    )
}
FORMAT_NAMES = ["auto", *CONVERTERS]


def get_converter(name: str) -> Converter:
    try:
        return CONVERTERS[name]
    except KeyError:
        raise DataError(f"unknown format '{name}'; choose one of: {', '.join(FORMAT_NAMES)}") from None


def detect_format(first: dict[str, Any] | None, *, source: object = None) -> Converter:
    """The format whose keys the first record has; a clear error when none (or no record) matches."""
    if first is None:
        raise DataError("no records to look at, so the format can't be detected", path=source)
    keys = set(map(str, first))
    for converter in CONVERTERS.values():
        if converter.claims(keys, first):
            return converter
    raise DataError(
        f"can't tell the format from the keys {sorted(keys)}; pass --format with one of: {', '.join(CONVERTERS)}",
        path=source,
    )


def import_dataset(*args: Any, **kwargs: Any) -> dict[str, Any]:
    from .runner import import_dataset as run

    return run(*args, **kwargs)


__all__ = [
    "CONVERTERS",
    "FORMAT_NAMES",
    "Converter",
    "ImportOptions",
    "RecordError",
    "detect_format",
    "get_converter",
    "import_dataset",
]
