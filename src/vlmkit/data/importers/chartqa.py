"""ChartQA in both distributed spellings:

- HuggingFaceM4/ChartQA: image, query, label (list of str), human_or_machine (class label 0 human, 1 machine)
- lmms-lab/ChartQA: type ("human_test" / "augmented_test"), question, answer (str), image
  (and ahmed-masry/ChartQA: imgname, query, label (str), type, image bytes)

Whether a question was written by people or generated ("augmented") is kept as `meta.origin`:
the paper reports the two halves separately.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .base import (
    ConvertContext,
    Converter,
    Outcome,
    RawRecord,
    answer_list,
    question_text,
    record_id,
    require,
    vqa_sample,
)


class ChartQA(Converter):
    name = "chartqa"
    description = "ChartQA: image, query/question, label/answer, human_or_machine/type"

    def claims(self, keys: set[str], first: dict[str, Any]) -> bool:
        if {"query", "label"} <= keys:
            return True
        kind = str(first.get("type", "")).lower()
        return {"question", "answer", "type"} <= keys and ("human" in kind or "augmented" in kind)

    def convert(self, record: RawRecord, ctx: ConvertContext) -> Iterable[Outcome]:
        data = record.data
        question = question_text(require(data, "query", "question"), field="query" if "query" in data else "question")
        answers = answer_list(data.get("label", data.get("answer")), field="label" if "label" in data else "answer")
        rid = record_id(data, record, "id", "question_id", "questionId")
        image = ctx.media.image(require(data, "image"), name=f"{record.where()} image", search_dirs=ctx.media_dirs())
        meta = {
            "source": self.name,
            "origin": origin(data),
            "image_name": data.get("imgname"),
            "split": record.split,
        }
        yield vqa_sample(f"{self.name}-{rid}", image, question, answers, meta)


def origin(data: dict[str, Any]) -> str | None:
    """'human' or 'augmented' from either spelling (0/1 class label, or a 'human_test'-style type)."""
    value = data.get("human_or_machine", data.get("type"))
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {0: "human", 1: "augmented"}.get(int(value), str(value))
    text = str(value).lower()
    if "human" in text:
        return "human"
    if "augmented" in text or "machine" in text:
        return "augmented"
    return text
