"""DocVQA as distributed in parquet (lmms-lab/DocVQA config DocVQA, HuggingFaceM4/DocumentVQA) or
the original JSON ({"data": [...]}, image paths relative to the JSON):
questionId, question, question_types, image, docId, ucsf_document_id, ucsf_document_page_no, answers.

Question types and the document id go to `meta` (the id is what `data split --group-by doc` uses).
Test splits ship no answers: those samples have no assistant turn and empty `answers`.
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


class DocVQA(Converter):
    name = "docvqa"
    description = "DocVQA: questionId, question, question_types, image, docId, ucsf_document_id, answers"

    def claims(self, keys: set[str], first: dict[str, Any]) -> bool:
        return "question" in keys and bool({"question_types", "docId", "ucsf_document_id"} & keys)

    def convert(self, record: RawRecord, ctx: ConvertContext) -> Iterable[Outcome]:
        data = record.data
        question = question_text(require(data, "question"))
        answers = answer_list(data.get("answers"))
        qid = record_id(data, record, "questionId", "question_id")
        image = ctx.media.image(require(data, "image"), name=f"{record.where()} image", search_dirs=ctx.media_dirs())
        doc_id = data.get("docId", data.get("doc_id"))
        meta = {
            "source": self.name,
            "question_id": qid,
            "question_type": data.get("question_types"),
            "doc_id": str(doc_id) if doc_id is not None else None,
            "ucsf_document_id": data.get("ucsf_document_id"),
            "ucsf_document_page_no": data.get("ucsf_document_page_no"),
            "data_split": data.get("data_split"),
            "split": record.split,
        }
        yield vqa_sample(f"{self.name}-{qid}", image, question, answers, meta)
