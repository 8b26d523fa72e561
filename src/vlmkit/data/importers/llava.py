"""LLaVA instruction JSON: [{id, image, conversations: [{from: human|gpt, value}]}] + an image folder.

`<image>` in a human turn marks where the image goes. Records without `image` are text-only
conversations and are kept as such. A record whose image has no `<image>` in the text gets it at the
start of the first question (how LLaVA's own loader treats it). Image paths resolve against
--media-root (LLaVA's `image_folder`), then the JSON's folder.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .base import ConvertContext, Converter, ImportOptions, Outcome, RawRecord, RecordError, require
from .conversation import count_placeholders, expected_pairs, parse_turns, record_conversation, stored_media_parts


class LLaVA(Converter):
    name = "llava"
    description = "LLaVA instruction JSON: id, image (optional), conversations[{from, value}] with <image>"

    def claims(self, keys: set[str], first: dict[str, Any]) -> bool:
        turns = first.get("conversations")
        return (
            isinstance(turns, list)
            and bool(turns)
            and isinstance(turns[0], dict)
            and "from" in turns[0]
            and not ({"images", "videos"} & keys)
        )

    def expected_units(self, data: dict[str, Any], options: ImportOptions) -> int:
        if (options.turns or self.default_turns) == "keep":
            return 1
        return expected_pairs(data.get("conversations"), "from")

    def convert(self, record: RawRecord, ctx: ConvertContext) -> Iterable[Outcome]:
        data = record.data
        turns = parse_turns(require(data, "conversations"), role_key="from", content_key="value", field="conversations")
        media: dict[str, list[dict[str, Any]]] = {}
        for kind in ("image", "video"):
            values = as_list(data.get(kind), kind)
            placeholders = count_placeholders(turns, kind)
            if placeholders and placeholders != len(values):
                raise RecordError(f"{placeholders} <{kind}> placeholder(s) but {len(values)} {kind}(s)", field=kind)
            media[kind] = stored_media_parts(ctx, record, kind, values, kind)
        return record_conversation(self, record, ctx, turns, media, field="conversations")


def as_list(value: Any, field: str) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, (str, dict, bytes)):
        return [value]
    raise RecordError(f"must be a path or a list of paths, got {type(value).__name__}", field=field)
