"""Viet-ViTextVQA-gemini-VQA (5CD-AI): id, image, description, conversations [{role, content}].

Each image comes with several Vietnamese QA pairs in one conversation. `--turns split` (the default)
gives one sample per pair, as the seed project trained; `--turns keep` keeps the whole conversation.
`meta.question_type` is the question's type by its Vietnamese question word (the `data stats` rules).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..schema import Sample
from ..stats import question_type
from .base import ConvertContext, Converter, ImportOptions, Outcome, RawRecord, record_id, require
from .conversation import build_conversation, expected_pairs, parse_turns


class ViTextVQA(Converter):
    name = "vitextvqa"
    description = "Viet-ViTextVQA-gemini-VQA: id, image, description, conversations[{role, content}]"
    default_turns = "split"

    def claims(self, keys: set[str], first: dict[str, Any]) -> bool:
        turns = first.get("conversations")
        return (
            "conversations" in keys
            and "image" in keys
            and "images" not in keys
            and isinstance(turns, list)
            and bool(turns)
            and isinstance(turns[0], dict)
            and "role" in turns[0]
        )

    def expected_units(self, data: dict[str, Any], options: ImportOptions) -> int:
        if (options.turns or self.default_turns) == "keep":
            return 1
        return expected_pairs(data.get("conversations"), "role")

    def convert(self, record: RawRecord, ctx: ConvertContext) -> Iterable[Outcome]:
        data = record.data
        turns = parse_turns(
            require(data, "conversations"), role_key="role", content_key="content", field="conversations"
        )
        source_id = record_id(data, record, "id")
        image = ctx.media.image(require(data, "image"), name=f"{record.where()} image", search_dirs=ctx.media_dirs())
        meta = {"source": self.name, "source_id": source_id, "description": data.get("description")}
        if record.split:
            meta["split"] = record.split
        meta = {k: v for k, v in meta.items() if v is not None}
        for outcome in build_conversation(
            turns,
            base_id=f"{self.name}-{source_id}",
            mode=ctx.options.turns or self.default_turns,
            meta=meta,
            media={"image": [{"type": "image", "image": image}]},
            field="conversations",
        ):
            if isinstance(outcome, Sample):
                # The release has no question types; the `data stats` rules type the (last) question by its
                # Vietnamese question word, so `vlmkit eval --task vitextvqa` breaks its scores down by them.
                outcome.meta = {**outcome.meta, "question_type": question_type(outcome.question())}
            yield outcome
