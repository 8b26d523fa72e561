"""InfographicVQA as distributed in parquet (lmms-lab/DocVQA config InfographicVQA) or its JSON:
questionId, question, answers, answer_type, image, image_url, operation/reasoning, ocr, data_split
(the JSON also has evidence).

Answer types, evidence and operation/reasoning go to `meta`. The `ocr` column (a long Textract dump per image)
is left out on purpose: it would repeat tens of kilobytes on every line of samples.jsonl.
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


class InfoVQA(Converter):
    name = "infovqa"
    description = "InfographicVQA: questionId, question, answers, answer_type, image, operation/reasoning"

    def claims(self, keys: set[str], first: dict[str, Any]) -> bool:
        return "question" in keys and (
            "operation/reasoning" in keys
            or {"answer_type", "image_url"} <= keys
            or {"questionId", "answer_type"} <= keys
        )

    def convert(self, record: RawRecord, ctx: ConvertContext) -> Iterable[Outcome]:
        data = record.data
        question = question_text(require(data, "question"))
        answers = answer_list(data.get("answers"))
        qid = record_id(data, record, "questionId", "question_id")
        image_value = data.get("image") if data.get("image") is not None else data.get("image_local_name")
        if image_value is None:
            require(data, "image", "image_local_name")
        image = ctx.media.image(image_value, name=f"{record.where()} image", search_dirs=ctx.media_dirs())
        doc = data.get("image_local_name") or data.get("image_url")
        meta = {
            "source": self.name,
            "question_id": qid,
            "answer_type": data.get("answer_type"),
            "operation_reasoning": data.get("operation/reasoning"),
            "evidence": data.get("evidence"),  # the original JSON has it; the parquet does not
            "doc_id": str(doc) if doc else None,
            "image_url": data.get("image_url"),
            "data_split": data.get("data_split"),
            "split": record.split,
        }
        yield vqa_sample(f"{self.name}-{qid}", image, question, answers, meta)
