"""VLMEvalKit benchmark files (MMBench, AI2D, ScienceQA, SEED, MMMU, POPE, MME ... as TSV), and the
lmms-eval MMBench parquet, which has the same columns:

    index, question, [hint], A .. Z (option columns; empty = absent), answer, [category],
    [l2-category | l2_category], [split], image | image_path

`image` is base64 (one image), a JSON list of base64 strings (multi-image items, e.g. MMMU), or a short
value naming another row's `index` whose image this row shares (VLMEvalKit's de-duplication: MMBench's
rotated copies point at the original). `image_path` (file names) is used where `image` is absent.

Sample ids are the `index` values as strings, so scores and submissions join on them. The options go into
`meta.options` ({letter: text}), with `hint`, `category`, `l2-category`, `split` and the row's `index`, so
scoring (and `vlmkit score --task mmbench` on any predictions file carrying that meta) can read them. The
question is stored as written (MMMU's `<image N>` placeholders included); the multiple-choice tasks lay
out the leaderboard prompt from it at evaluation time (eval/tasks/choice_prompt.py).

Rows stream one at a time; what is kept across rows is only index -> stored media file names. References
to rows further down the file (rare) are resolved by reading ahead in a second handle on the file, once
for the whole import.
"""

from __future__ import annotations

import ast
import base64
import binascii
import json
import string
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..schema import Sample
from .base import ConvertContext, Converter, Outcome, RawRecord, RecordError, first_present, question_text, require

# Cells pandas reads as missing (VLMEvalKit loads these files with pandas): such an option is absent.
NA_STRINGS = frozenset(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A"}
    | {"NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
)
REFERENCE_MAX_CHARS = 64  # VLMEvalKit: an `image` value this short is another row's index
KNOWN_COLUMNS = {
    "index",
    "question",
    "hint",
    "answer",
    "image",
    "image_path",
    "l2-category",
    "l2_category",
    "L2-category",
}
META_TEXT_LIMIT = 200  # other short columns (category, split, subject...) are kept in meta for grouping


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return value != value  # NaN
    return isinstance(value, str) and value.strip() in NA_STRINGS


def index_text(value: Any) -> str:
    """'12', 12 and 12.0 all name row 12."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    if text.endswith(".0") and text[:-2].lstrip("-").isdigit():
        return text[:-2]
    return text


def as_list(value: str) -> list[str] | None:
    """A JSON (or Python) list of strings written in a cell, else None."""
    text = value.strip()
    if not (len(text) > 1 and text[0] == "[" and text[-1] == "]"):
        return None
    try:
        items = json.loads(text)
    except ValueError:
        try:
            items = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return None
    return [str(x) for x in items] if isinstance(items, list) else None


class _ImportState:
    """Per import: index -> stored media of that row (file names only, never image data)."""

    def __init__(self) -> None:
        self.stored: dict[str, list[str]] = {}
        self.ahead: Iterator[dict[str, str]] | None = None  # read-ahead for references to later rows


class VLMEvalKit(Converter):
    name = "vlmevalkit"
    description = "VLMEvalKit benchmark TSV (index, question, hint, A..Z, answer, category, image base64)"

    def __init__(self) -> None:
        self._states: weakref.WeakKeyDictionary[Any, _ImportState] = weakref.WeakKeyDictionary()

    def claims(self, keys: set[str], first: dict[str, Any]) -> bool:
        # option columns, or (POPE, MME) yes/no rows: index, question, answer and an image column
        return {"index", "question", "answer"} <= keys and bool({"A", "image", "image_path"} & keys)

    def _state(self, ctx: ConvertContext) -> _ImportState:
        state = self._states.get(ctx.media)
        if state is None:
            state = self._states[ctx.media] = _ImportState()
        return state

    def convert(self, record: RawRecord, ctx: ConvertContext) -> Iterable[Outcome]:
        data = record.data
        index = index_text(require(data, "index"))
        if not index:
            raise RecordError("empty index", field="index")
        question = question_text(require(data, "question"))
        options = {
            letter: index_text(data[letter]) if isinstance(data[letter], float) else str(data[letter])
            for letter in string.ascii_uppercase
            if letter in data and not is_missing(data[letter])
        }
        answer = data.get("answer")
        answers = [] if is_missing(answer) else [str(answer).strip()]
        images, owner = self._images(record, ctx, index)
        meta: dict[str, Any] = {"source": self.name, "index": int(index) if _is_int(index) else index}
        if options:
            meta["options"] = options
        hint = data.get("hint")
        if not is_missing(hint):
            meta["hint"] = str(hint)
        l2 = first_present(data, "l2-category", "l2_category", "L2-category")
        if not is_missing(l2):
            meta["l2-category"] = str(l2)
        for key, value in data.items():
            if key in KNOWN_COLUMNS or key in options or (len(key) == 1 and key in string.ascii_uppercase):
                continue
            if isinstance(value, (str, int, float, bool)) and not is_missing(value):
                if not isinstance(value, str) or len(value) <= META_TEXT_LIMIT:
                    meta[str(key)] = value
        if record.split and "split" not in meta:
            meta["split"] = record.split
        path = data.get("image_path")
        meta["image_key"] = str(path) if isinstance(path, str) and not is_missing(path) else owner
        yield choice_sample(index, images, question, answers, meta)

    # --- images ---------------------------------------------------------------------------------
    def _images(self, record: RawRecord, ctx: ConvertContext, index: str) -> tuple[list[str], str]:
        """Stored media of this row and the index of the row that owns them."""
        state = self._state(ctx)
        data = record.data
        value = data.get("image")
        if is_missing(value) or (isinstance(value, str) and not value.strip()):
            paths = data.get("image_path")
            if is_missing(paths):
                return [], index
            names = as_list(str(paths)) or [str(paths)]
            stored = [ctx.media.image_file(name, search_dirs=ctx.media_dirs(), field="image_path") for name in names]
            state.stored[index] = stored
            return stored, index
        if isinstance(value, str) and len(value.strip()) <= REFERENCE_MAX_CHARS:
            owner = index_text(value)
            if owner not in state.stored:
                self._resolve_forward(record, ctx, owner)
            state.stored[index] = state.stored[owner]
            return state.stored[owner], owner
        stored = self._store(value, ctx, f"{record.where()} image")
        state.stored[index] = stored
        return stored, index

    def _store(self, value: Any, ctx: ConvertContext, name: str) -> list[str]:
        if not isinstance(value, str):  # a parquet image struct, bytes, or a list of them
            items = list(value) if isinstance(value, (list, tuple)) else [value]
            return [ctx.media.image(item, name=name, search_dirs=ctx.media_dirs()) for item in items]
        items = as_list(value) or [value]
        stored = []
        for n, item in enumerate(items):
            try:
                raw = base64.b64decode(item.strip())
            except (binascii.Error, ValueError) as exc:
                raise RecordError(f"image {n + 1} is not valid base64 ({exc})", field="image") from None
            stored.append(ctx.media.image_bytes(raw, name=name if len(items) == 1 else f"{name} {n + 1}"))
        return stored

    def _resolve_forward(self, record: RawRecord, ctx: ConvertContext, owner: str) -> None:
        """A reference to a row not seen yet: read ahead in the file (one pass for the whole import, kept
        open between calls) storing the images passed on the way, until the row that owns this one."""
        path = Path(record.source)
        state = self._state(ctx)
        if path.suffix.lower() not in (".tsv", ".csv") or not path.is_file():
            raise RecordError(f"image refers to index {owner}, which no earlier row has", field="image")
        if state.ahead is None:
            state.ahead = iter_table(path)
        for row in state.ahead:
            index = index_text(row.get("index", ""))
            value = row.get("image")
            if index in state.stored or is_missing(value) or len(str(value).strip()) <= REFERENCE_MAX_CHARS:
                if index == owner:
                    break
                continue
            try:
                state.stored[index] = self._store(value, ctx, f"{path} index {index} image")
            except RecordError:
                if index == owner:
                    raise
                continue  # that row reports its own problem when the import reaches it
            if index == owner:
                return
        raise RecordError(f"image refers to index {owner}, which no row of the file has an image for", field="image")


def iter_table(path: Path) -> Iterator[dict[str, str]]:
    import csv

    from .readers_text import allow_large_fields

    allow_large_fields()
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, encoding="utf-8-sig", newline="") as handle:
        yield from csv.DictReader(handle, delimiter=delimiter)


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def choice_sample(sample_id: str, images: list[str], question: str, answers: list[str], meta: dict[str, Any]) -> Sample:
    """user [images..., question] -> assistant [answer]; the answer (an option letter) is the target."""
    content: list[dict[str, Any]] = [{"type": "image", "image": image} for image in images]
    content.append({"type": "text", "text": question})
    messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
    if answers:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answers[0]}]})
    return Sample.model_validate(
        {
            "id": sample_id,
            "messages": messages,
            "answers": answers,
            "meta": {k: v for k, v in meta.items() if v is not None},
        }
    )
