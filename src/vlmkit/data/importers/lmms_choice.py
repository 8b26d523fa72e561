"""lmms-eval's hub layouts of the multiple-choice and yes/no suites (parquet shards or `--hub`), into the
same samples as the VLMEvalKit importer (options in `meta.options` as {letter: text}, the answer a letter):

    ai2d           question, options (list), answer (option number "0".."n"), image
    scienceqa      question, choices (list), answer (int), hint, image, subject, category, grade  (ScienceQA-IMG)
    seedbench      question, choice_a..choice_d, answer (letter), question_type_id, data_type, image (list)
    mmmu           id, question, options (list written as a string), answer, image_1..image_7, question_type
    pope           question_id, question, answer (yes/no), category, image_source, image
    mme            question_id, question, answer (Yes/No), category, image

(lmms-eval's MMBench has VLMEvalKit's own columns and is read by the `vlmevalkit` format.) A record of
none of these shapes fails with a message naming each layout's columns.
"""

from __future__ import annotations

import ast
import string
from collections.abc import Iterable
from typing import Any

from .base import ConvertContext, Converter, Outcome, RawRecord, RecordError, first_present, question_text, require
from .vlmevalkit import choice_sample, is_missing

SEED_DIMENSIONS = {
    1: "Scene Understanding",
    2: "Instance Identity",
    3: "Instance Attributes",
    4: "Instance Location",
    5: "Instances Counting",
    6: "Spatial Relation",
    7: "Instance Interaction",
    8: "Visual Reasoning",
    9: "Text Understanding",
    10: "Action Recognition",
    11: "Action Prediction",
    12: "Procedure Understanding",
}
LAYOUTS = {
    "mmmu": ({"id", "question", "options", "answer", "image_1"}, "id, question, options, answer, image_1..image_7"),
    "seedbench": ({"question", "choice_a", "choice_b", "answer"}, "question, choice_a..choice_d, answer, image"),
    "scienceqa": ({"question", "choices", "answer"}, "question, choices, answer, hint, image"),
    "ai2d": ({"question", "options", "answer", "image"}, "question, options, answer, image"),
    "yes/no (pope, mme)": (
        {"question_id", "question", "answer", "category"},
        "question_id, question, answer, category",
    ),
}


def _letters(options: list[Any]) -> dict[str, str]:
    return {letter: str(text) for letter, text in zip(string.ascii_uppercase, options) if not is_missing(text)}


def _option_list(value: Any, field: str) -> list[Any]:
    if isinstance(value, str):  # MMMU writes its options as a Python list literal
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise RecordError(f"{field} is not a list: {value[:60]!r}", field=field) from None
    if hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise RecordError(f"{field} must be a list, got {type(value).__name__}", field=field)
    return list(value)


def _letter_of(answer: Any, count: int, field: str = "answer") -> str:
    """An option number (0-based int or "0") as its letter; a letter stays a letter."""
    text = str(answer).strip()
    if text.isdigit() and int(text) < count:
        return string.ascii_uppercase[int(text)]
    if len(text) == 1 and text.upper() in string.ascii_uppercase[:count]:
        return text.upper()
    raise RecordError(f"answer {text!r} names none of the {count} options", field=field)


def layout_of(keys: set[str]) -> str | None:
    for name, (needed, _) in LAYOUTS.items():
        if needed <= keys:
            return name
    return None


class LmmsChoice(Converter):
    name = "lmms-choice"
    description = "lmms-eval layouts of AI2D, ScienceQA-IMG, SEED-Bench, MMMU, POPE, MME (parquet / hub)"

    def claims(self, keys: set[str], first: dict[str, Any]) -> bool:
        if "index" in keys and {"A", "B"} <= keys:
            return False  # VLMEvalKit columns
        layout = layout_of(keys)
        if layout == "yes/no (pope, mme)":
            return str(first.get("answer", "")).strip().lower() in ("yes", "no")
        return layout is not None

    def convert(self, record: RawRecord, ctx: ConvertContext) -> Iterable[Outcome]:
        data = record.data
        layout = layout_of(set(map(str, data)))
        if layout is None:
            expected = "; ".join(f"{name}: {cols}" for name, (_, cols) in LAYOUTS.items())
            raise RecordError(f"columns {sorted(map(str, data))} match no lmms-eval layout (expected {expected})")
        question = question_text(require(data, "question"))
        meta: dict[str, Any] = {"source": f"lmms-eval/{layout.split(' ')[0]}", "split": record.split}
        image_values: list[Any] = []
        if layout == "mmmu":
            sample_id = str(data["id"])
            raw_options = _option_list(data["options"], "options")
            options = _letters(raw_options)
            if data.get("question_type") == "multiple-choice" or options:
                answers = [_letter_of(data["answer"], len(raw_options))]
            else:
                answers = [str(data["answer"])]
            parts = sample_id.split("_")
            meta.update(
                category="_".join(parts[1:-1]) or None,
                question_type=data.get("question_type"),
                subfield=data.get("subfield"),
                difficulty=data.get("topic_difficulty"),
            )
            image_values = [data[f"image_{n}"] for n in range(1, 8) if not is_missing(data.get(f"image_{n}"))]
        elif layout == "seedbench":
            sample_id = str(require(data, "question_id", "data_id"))
            options = _letters([data.get(f"choice_{c}") for c in "abcdefgh" if f"choice_{c}" in data])
            answers = [_letter_of(data["answer"], len(options))]
            dim = data.get("question_type_id")
            meta.update(category=SEED_DIMENSIONS.get(int(dim), str(dim)) if dim is not None else None)
            meta.update(data_type=data.get("data_type"))
            image_values = _image_list(data.get("image"))
        elif layout in ("scienceqa", "ai2d"):
            field = "choices" if layout == "scienceqa" else "options"
            raw_options = _option_list(data[field], field)
            options = _letters(raw_options)
            answers = [_letter_of(data["answer"], len(raw_options))]
            sample_id = str(first_present(data, "question_id", "id", "index", default=record.location.split()[-1]))
            if not is_missing(data.get("hint")) and str(data.get("hint")).strip():
                meta["hint"] = str(data["hint"])
            for key in ("category", "subject", "grade", "topic", "skill"):
                if isinstance(data.get(key), (str, int)) and not is_missing(data.get(key)):
                    meta[key] = data[key]
            image_values = _image_list(data.get("image"))
        else:
            sample_id = str(data["question_id"])
            options = {}
            answers = [str(data["answer"]).strip()]
            meta["category"] = data.get("category")
            # MME asks two questions per image (acc+ needs the pair): lmms-eval's question_id is the image
            meta["image_key"] = str(first_present(data, "image_source", "question_id"))
            if layout and "id" in data and "image_source" in data:  # POPE: question_id is per question
                sample_id = str(first_present(data, "id", "question_id"))
            image_values = _image_list(data.get("image"))
        if options:
            meta["options"] = options
        images = [
            ctx.media.image(value, name=f"{record.where()} image {n + 1}", search_dirs=ctx.media_dirs())
            for n, value in enumerate(image_values)
        ]
        yield choice_sample(sample_id, images, question, answers, meta)


def _image_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if hasattr(value, "tolist") and not isinstance(value, (bytes, dict)):
        value = value.tolist()
    return list(value) if isinstance(value, (list, tuple)) else [value]
