"""Which `data.augment` transforms would change the answer for this training data: refused before training, naming
the key, the reason and an example sample.

| transform          | refused when                                                                          |
|--------------------|---------------------------------------------------------------------------------------|
| hflip              | a text-reading task (mirrored text is not the text the answer reads), or any training |
|                    | question or answer about left / right (a mirrored "left" is right)                    |
| vflip              | a text-reading task, or any question or answer about above / below (top / bottom)    |
| rotation > 10 deg  | a text-reading task (tilted lines are no longer read as they were)                     |

A text-reading task is recognised by name (`data.augment.text_reading: auto`): the importer recorded in the
samples' `meta.source`, the source in the dataset's import_report.json, or the dataset folder's name, matching
TextVQA / ST-VQA / DocVQA / ChartQA / InfoVQA / OCR-like names. `text_reading: true` declares it for a dataset
whose names do not say so; `false` declares that no answer depends on text in the image.

The left/right and above/below words are matched in the languages vlmkit handles (English, Vietnamese, Chinese) as
whole words or spatial phrases, so "right answer", Vietnamese "phải" (must) and "trái cây" (fruit), and Chinese
"左右" (about, approximately) do not count.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .image_augment import TEXT_SAFE_ROTATION_DEGREES
from .schema import Sample

TEXT_TASK_MARKERS = (
    "textvqa",
    "stvqa",
    "scenetext",
    "textcaps",
    "docvqa",
    "document",
    "chartqa",
    "chart",
    "infovqa",
    "infographic",
    "ocr",
    "screenqa",
)

_EN_BEFORE = r"(?:on|to|at|from|far|turn|turning|facing|top|bottom|upper|lower)\s+(?:the\s+)?"
_EN_AFTER = r"(?:most|wards?|-hand|\s+hand|\s+side|\s+corner|\s+of\b|\s+to\b)"
_VI_BEFORE = r"(?:bên|phía|tay|góc|mé|cạnh|hướng|sang|qua|rẽ|quẹo|từ)\s+"
HORIZONTAL = re.compile(
    rf"\b{_EN_BEFORE}(?:left|right)\b|\b(?:left|right){_EN_AFTER}|\bleft\s+or\s+right\b|\bright\s+or\s+left\b"
    rf"|\b{_VI_BEFORE}(?:trái|phải)\b"
    r"|(?<!左)右|左(?!右)"  # 左右 together means 'about, approximately'
    r"|^\W*(?:left|right|trái|phải)\W*$",  # a bare answer: 'Left.'
    re.IGNORECASE,
)
VERTICAL = re.compile(
    r"\b(?:top|bottom|above|below|upper|underneath|beneath|upside)\b"
    r"|\b(?:bên|phía|ở|góc|mặt|nửa)\s+(?:trên|dưới)\b"
    r"|上面|下面|上方|下方|上边|下边|顶部|底部|上半|下半",
    re.IGNORECASE,
)


def check_augment(settings: Any, samples: Sequence[Sample], folder: str | None) -> None:
    """Raise ConfigError for the first configured transform that would change answers in this training data."""
    from .image_augment import is_active

    if not is_active(settings):
        return
    text = _text_reading(settings, samples, folder)
    if text is not None:
        for key, value, what in (
            ("hflip", settings.hflip, "a horizontal flip mirrors text"),
            ("vflip", settings.vflip, "a vertical flip turns text upside down"),
        ):
            if value:
                raise ConfigError(
                    f"data.augment.{key}: {what}, and this is a text-reading task ({text}); the answers would no "
                    f"longer match the image. Set {key}: 0, or text_reading: false if no answer depends on text in "
                    "the image"
                )
        if settings.rotation > TEXT_SAFE_ROTATION_DEGREES:
            raise ConfigError(
                f"data.augment.rotation: {settings.rotation:g} degrees is over the {TEXT_SAFE_ROTATION_DEGREES:g} "
                f"allowed for a text-reading task ({text}); tilted text reads differently. Lower rotation, or set "
                "text_reading: false if no answer depends on text in the image"
            )
    for key, pattern, words in (("hflip", HORIZONTAL, "left or right"), ("vflip", VERTICAL, "above or below")):
        if not getattr(settings, key):
            continue
        hits = [(s, m) for s in samples if (m := _first_match(pattern, s))]
        if hits:
            sample, match = hits[0]
            flip = "a mirrored" if key == "hflip" else "an upside-down"
            raise ConfigError(
                f"data.augment.{key}: {len(hits)} of {len(samples)} training samples ask or answer about {words} "
                f"(e.g. '{sample.id}': {match!r}); {flip} image makes those answers wrong. Set {key}: 0, or remove "
                "those samples from data.train"
            )


def _first_match(pattern: re.Pattern[str], sample: Sample) -> str | None:
    """The first message text (question or answer) that uses one of the pattern's words, shortened."""
    for message in sample.messages:
        text = message.text()
        found = pattern.search(text)
        if found:
            start = max(0, found.start() - 40)
            snippet = text[start : found.end() + 40]
            return ("..." if start else "") + snippet + ("..." if found.end() + 40 < len(text) else "")
    for answer in sample.answers:
        if pattern.search(answer):
            return answer
    return None


def _text_reading(settings: Any, samples: Sequence[Sample], folder: str | None) -> str | None:
    """Why the training data counts as a text-reading task, or None."""
    if settings.text_reading is True:
        return "data.augment.text_reading: true"
    if settings.text_reading is False:
        return None
    sources = [(s, str(s.meta.get("source", ""))) for s in samples]
    marked = [(s, name) for s, name in sources if _marks_text(name)]
    if marked:
        sample, name = marked[0]
        return f"meta.source '{name}' on {len(marked)} of {len(samples)} training samples, e.g. '{sample.id}'"
    if folder:
        path = Path(folder)
        root = path.parent if path.is_file() else path
        report = _import_source(root)
        if report and _marks_text(report):
            return f"imported from '{report}' ({root / 'import_report.json'})"
        if _marks_text(root.name):
            return f"the dataset folder is named '{root.name}'"
    return None


def _marks_text(name: str) -> bool:
    squashed = re.sub(r"[^a-z0-9]", "", name.lower())
    return any(marker in squashed for marker in TEXT_TASK_MARKERS)


def _import_source(root: Path) -> str | None:
    try:
        report = json.loads((root / "import_report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    source = report.get("source") if isinstance(report, dict) else None
    return Path(source).name if isinstance(source, str) and Path(source).exists() else source
