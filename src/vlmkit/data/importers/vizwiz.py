"""VizWiz-VQA in both distributed forms:

- the original annotation JSON + image folder: image (file name), question,
  answers [{answer, answer_confidence}] x 10, answer_type, answerable
- lmms-lab/VizWiz-VQA parquet: question_id, image, question, answers (10 strings), category

All 10 answers go to `answers` (the VQA accuracy needs them); the training target is the most common one.
Images named in the JSON are looked up in --media-root, next to the JSON, and in a folder named like
the JSON (train.json -> train/), which is how the VizWiz archives unpack.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .base import (
    ConvertContext,
    Converter,
    Outcome,
    RawRecord,
    answer_list,
    majority,
    question_text,
    record_id,
    require,
    vqa_sample,
)


class VizWiz(Converter):
    name = "vizwiz"
    description = "VizWiz: image, question, answers (10, with confidences), answer_type, answerable"

    def claims(self, keys: set[str], first: dict[str, Any]) -> bool:
        answers = first.get("answers")
        with_confidence = (
            isinstance(answers, list)
            and bool(answers)
            and isinstance(answers[0], dict)
            and "answer_confidence" in answers[0]
        )
        return "question" in keys and (with_confidence or "answerable" in keys or {"category", "question_id"} <= keys)

    def convert(self, record: RawRecord, ctx: ConvertContext) -> Iterable[Outcome]:
        data = record.data
        question = question_text(require(data, "question"))
        raw_answers = data.get("answers")
        answers = answer_list(raw_answers)
        image_value = require(data, "image")
        name = image_value if isinstance(image_value, str) else None
        # The JSON has no question id, but VizWiz has one question per image, so the image name is unique.
        rid = (
            str(data["question_id"])
            if data.get("question_id") is not None
            else (Path(name).stem if name else record_id(data, record))
        )
        image = ctx.media.image(image_value, name=f"{record.where()} image", search_dirs=ctx.media_dirs())
        confidences = (
            [a.get("answer_confidence") for a in raw_answers if isinstance(a, dict)]
            if isinstance(raw_answers, list)
            else []
        )
        meta = {
            "source": self.name,
            "question_id": data.get("question_id"),
            "image_name": name or image_name(data.get("question_id"), image_value),
            "answer_type": data.get("answer_type"),
            "answerable": data.get("answerable"),
            "category": data.get("category"),
            "answer_confidence": confidences or None,
            "split": record.split,
        }
        yield vqa_sample(f"{self.name}-{rid}", image, question, answers, meta, target=majority(answers))


def image_name(question_id: Any, image_value: Any) -> str | None:
    """The image's file name, which VizWiz submissions are keyed by: the parquet image struct's own path when
    it has one; else the question id, which in the lmms-lab parquet (no file names) is the image's stem
    ("VizWiz_test_00000000"), as lmms-eval's submission writer assumes."""
    path = image_value.get("path") if isinstance(image_value, dict) else None
    if isinstance(path, str) and path.strip():
        return Path(path).name
    if question_id is not None and str(question_id).strip():
        stem = str(question_id).strip()
        return stem if Path(stem).suffix.lower() in (".jpg", ".jpeg", ".png") else f"{stem}.jpg"
    return None
