"""LLaMA-Factory multimodal ShareGPT: {"messages": [{role, content}], "images": [...], "videos": [...]}
(or "conversations": [{from, value}], and an optional "system" string).

LLaMA-Factory's rule holds here too: the number of `<image>` placeholders must equal the number of
images (and `<video>` of videos); each placeholder becomes the media part at that spot in the text.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .base import ConvertContext, Converter, ImportOptions, Outcome, RawRecord, RecordError, Unsupported
from .conversation import count_placeholders, expected_pairs, parse_turns, record_conversation, stored_media_parts
from .llava import as_list


class ShareGPT(Converter):
    name = "sharegpt"
    description = "LLaMA-Factory ShareGPT: messages[{role, content}] (or conversations[{from, value}]), images, videos"

    def claims(self, keys: set[str], first: dict[str, Any]) -> bool:
        return "messages" in keys or ("conversations" in keys and bool({"images", "videos"} & keys))

    def _layout(self, data: dict[str, Any]) -> tuple[str, str, str]:
        key = "messages" if "messages" in data else "conversations"
        turns = data.get(key)
        first = turns[0] if isinstance(turns, list) and turns and isinstance(turns[0], dict) else {}
        if "from" in first:
            return key, "from", "value"
        return key, "role", "content"

    def expected_units(self, data: dict[str, Any], options: ImportOptions) -> int:
        if (options.turns or self.default_turns) == "keep":
            return 1
        key, role_key, _ = self._layout(data)
        return expected_pairs(data.get(key), role_key)

    def convert(self, record: RawRecord, ctx: ConvertContext) -> Iterable[Outcome]:
        data = record.data
        key, role_key, content_key = self._layout(data)
        if data.get(key) is None:
            raise RecordError(
                f"missing 'messages' (keys present: {', '.join(sorted(data)) or 'none'})", field="messages"
            )
        turns = parse_turns(data[key], role_key=role_key, content_key=content_key, field=key)
        if data.get("audios") or data.get("audio") or any("<audio>" in text for _, text in turns):
            raise Unsupported("audio is not supported ('audios' / <audio>); record skipped", field="audios")
        if isinstance(data.get("system"), str) and data["system"].strip():
            turns = [("system", data["system"])] + turns
        media: dict[str, list[dict[str, Any]]] = {}
        for kind in ("image", "video"):
            values = as_list(data.get(f"{kind}s"), f"{kind}s")
            placeholders = count_placeholders(turns, kind)
            if placeholders != len(values):
                raise RecordError(
                    f"{placeholders} <{kind}> placeholder(s) but {len(values)} {kind}(s); "
                    "LLaMA-Factory needs them equal",
                    field=f"{kind}s",
                )
            media[kind] = stored_media_parts(ctx, record, kind, values, f"{kind}s")
        return record_conversation(self, record, ctx, turns, media, field=key)
