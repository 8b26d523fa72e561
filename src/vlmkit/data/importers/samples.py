"""vlmkit's own sample records (the samples.jsonl schema), e.g. conversations saved by `vlmkit chat /save`:
`{"id", "messages": [{"role", "content": [{"type": "text"|"image"|"video", ...}]}], "answers", "meta"}`.

The record is validated as a Sample; its images and videos are looked up like any format's (absolute paths, or
relative to --media-root / the annotation file) and copied into the new dataset's media/.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from ..schema import Sample
from .base import ConvertContext, Converter, Outcome, RawRecord, RecordError


class Samples(Converter):
    name = "vlmkit"
    description = "vlmkit sample records (samples.jsonl schema): id, messages[{role, content[{type, ...}]}]"

    def claims(self, keys: set[str], first: dict[str, Any]) -> bool:
        messages = first.get("messages")
        return (
            "id" in keys
            and isinstance(messages, list)
            and bool(messages)
            and isinstance(messages[0], dict)
            and isinstance(messages[0].get("content"), list)  # ShareGPT's content is a string
        )

    def convert(self, record: RawRecord, ctx: ConvertContext) -> Iterable[Outcome]:
        try:
            sample = Sample.model_validate(record.data)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(x) for x in error.get("loc", ())) or None
            raise RecordError(error["msg"].removeprefix("Value error, "), field=field) from None
        data = sample.to_json()
        for m, message in enumerate(data["messages"]):
            for p, part in enumerate(message["content"]):
                kind = part.get("type")
                if kind in ("image", "video"):
                    store = ctx.media.image if kind == "image" else ctx.media.video
                    field = f"messages.{m}.content.{p}.{kind}"
                    part[kind] = store(
                        part[kind], name=f"{record.where()} {kind}", search_dirs=ctx.media_dirs(), field=field
                    )
        return [Sample.model_validate(data)]
