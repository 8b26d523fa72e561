"""TextVQA as distributed in parquet (lmms-lab/textvqa, facebook/textvqa) or the original JSON
({"data": [...]} with images in a folder as <image_id>.jpg): question_id, question, image, image_id,
answers (10), ocr_tokens, image_classes, set_name, flickr urls, image_width/height.

All 10 answers go to `answers`; the target is the most common. OCR tokens and image classes go to
`meta` (OCR-aware prompts use them); test splits ship 10 blank answers, which become none.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .base import (
    ConvertContext,
    Converter,
    Outcome,
    RawRecord,
    RecordError,
    answer_list,
    majority,
    question_text,
    record_id,
    require,
    vqa_sample,
)


class TextVQA(Converter):
    name = "textvqa"
    description = "TextVQA: question_id, question, image, image_id, answers (10), ocr_tokens, image_classes"

    def claims(self, keys: set[str], first: dict[str, Any]) -> bool:
        return "question" in keys and bool(
            {"ocr_tokens", "image_classes", "flickr_original_url", "flickr_300k_url"} & keys
        )

    def convert(self, record: RawRecord, ctx: ConvertContext) -> Iterable[Outcome]:
        data = record.data
        question = question_text(require(data, "question"))
        answers = answer_list(data.get("answers"))
        qid = record_id(data, record, "question_id")
        if data.get("image") is not None:
            image_value: Any = data["image"]
        elif data.get("image_id"):
            image_value = f"{data['image_id']}.jpg"  # the original release: train_images/<image_id>.jpg
        else:
            raise RecordError("missing 'image' (and no 'image_id' to find the file by)", field="image")
        dirs = ctx.media_dirs()
        dirs += [d / sub for d in list(dirs) for sub in ("train_images", "test_images")]
        image = ctx.media.image(image_value, name=f"{record.where()} image", search_dirs=dirs)
        meta = {
            "source": self.name,
            "question_id": data.get("question_id"),
            "image_id": data.get("image_id"),
            "image_classes": data.get("image_classes"),
            "ocr_tokens": data.get("ocr_tokens"),
            "set_name": data.get("set_name"),
            "split": record.split,
        }
        yield vqa_sample(f"{self.name}-{qid}", image, question, answers, meta, target=majority(answers))
