"""Video-caption lists (WebVid-style CSV `videoid,contentUrl,duration,page_dir,name`, or JSON/JSONL
with a video path and a caption) -> video QA samples: the caption answers a configurable prompt.

The video is found by its path column, or by `videoid` as <media-root>/<videoid>.mp4 or
<media-root>/<page_dir>/<videoid>.mp4. Videos are copied into media/ as they are, never re-encoded.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..schema import Sample
from .base import ConvertContext, Converter, Outcome, RawRecord, RecordError, first_present, record_id, require

DEFAULT_PROMPT = "Describe this video."
PATH_KEYS = ("video", "video_path", "video_name", "path", "file", "filename")
ID_KEYS = ("videoid", "video_id")
CAPTION_KEYS = ("caption", "name", "text", "description", "title")
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".mov", ".avi")


class VideoCaptions(Converter):
    name = "video-captions"
    description = "WebVid-style CSV/JSON: video path or videoid, caption (answer to --prompt)"

    def claims(self, keys: set[str], first: dict[str, Any]) -> bool:
        return (
            bool(set(CAPTION_KEYS) & keys)
            and bool(set(PATH_KEYS + ID_KEYS + ("contentUrl",)) & keys)
            and "question" not in keys
            and "conversations" not in keys
        )

    def convert(self, record: RawRecord, ctx: ConvertContext) -> Iterable[Outcome]:
        data = record.data
        caption = require(data, *CAPTION_KEYS)
        if not isinstance(caption, str) or not caption.strip():
            raise RecordError("empty caption", field="caption")
        dirs = ctx.media_dirs()
        path_value = first_present(data, *PATH_KEYS)
        video_id = first_present(data, *ID_KEYS)
        if path_value is None and video_id is not None:
            path_value = self._find_by_id(str(video_id), data.get("page_dir"), dirs)
        if path_value is None:
            raise RecordError(
                f"no video path: needs one of {', '.join(PATH_KEYS)} or a videoid whose file is in --media-root",
                field="video",
            )
        video = ctx.media.video(path_value, name=f"{record.where()} video", search_dirs=dirs)
        rid = (
            str(video_id)
            if video_id is not None
            else (Path(str(path_value)).stem if isinstance(path_value, str) else record_id(data, record, "id"))
        )
        prompt = ctx.options.prompt or DEFAULT_PROMPT
        meta = {
            "source": self.name,
            "video_id": rid,
            "duration": data.get("duration"),
            "content_url": data.get("contentUrl"),
        }
        if record.split:
            meta["split"] = record.split
        yield Sample.model_validate(
            {
                "id": f"video-{rid}",
                "messages": [
                    {"role": "user", "content": [{"type": "video", "video": video}, {"type": "text", "text": prompt}]},
                    {"role": "assistant", "content": [{"type": "text", "text": caption.strip()}]},
                ],
                "answers": [caption.strip()],
                "meta": {k: v for k, v in meta.items() if v not in (None, "")},
            }
        )

    @staticmethod
    def _find_by_id(video_id: str, page_dir: Any, dirs: list[Path]) -> str | None:
        for folder in dirs:
            for sub in ([str(page_dir)] if page_dir else []) + [""]:
                for ext in VIDEO_EXTENSIONS:
                    candidate = folder / sub / f"{video_id}{ext}"
                    if candidate.is_file():
                        return str(candidate)
        return None
