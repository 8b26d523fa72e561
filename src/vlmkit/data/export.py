"""Write a vlmkit dataset back out for other trainers: LLaVA instruction JSON or LLaMA-Factory ShareGPT.

Media parts become `<image>` / `<video>` placeholders at their place in the text, one line each
("<image>\\nWhat is it?"), with the file paths in `image`/`images`/`videos`, in placeholder order, so
the counts always match (LLaMA-Factory checks that). Paths are written relative to the output file's
folder (use that folder as LLaVA's `image_folder` / LLaMA-Factory's `media_dir`), or absolute.

The file is streamed to a temp file and renamed into place: memory stays flat and a crash never
leaves half an export. `.jsonl` output writes one record per line (both trainers read it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..io import atomic_open
from .schema import SAMPLES_FILE, ImagePart, Sample, TextPart, VideoPart, iter_samples

EXPORT_FORMATS = ("llava", "sharegpt")
LLAVA_ROLES = {"user": "human", "assistant": "gpt", "system": "system"}


def export_dataset(
    dataset: str | os.PathLike,
    out: str | os.PathLike,
    *,
    format: str,
    absolute_paths: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Export DATASET (a folder with samples.jsonl) to OUT; returns counts and a LLaMA-Factory dataset_info entry.
    An existing OUT is replaced only with `overwrite`, and never when it is the dataset's own samples.jsonl."""
    if format not in EXPORT_FORMATS:
        raise DataError(f"export format must be one of {', '.join(EXPORT_FORMATS)}, not '{format}'")
    root = Path(dataset)
    if not (root / SAMPLES_FILE).exists():
        raise DataError(f"no {SAMPLES_FILE} here (is this a vlmkit dataset folder?)", path=root)
    out = Path(out)
    if out.resolve() == (root / SAMPLES_FILE).resolve():
        raise DataError("--out is the dataset's own samples.jsonl; choose another file", path=out)
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise DataError("already exists (pass --overwrite to replace it)", path=out)
    as_lines = out.suffix.lower() in (".jsonl", ".ndjson")
    convert = to_llava if format == "llava" else to_sharegpt

    def path_of(value: str) -> str:
        if "://" in value or value.startswith("data:"):
            return value
        full = Path(value) if os.path.isabs(value) else root / value
        return str(full.resolve()) if absolute_paths else os.path.relpath(full.resolve(), out.parent.resolve())

    count = 0
    with atomic_open(out) as handle:
        handle.write("" if as_lines else "[\n")
        for sample in iter_samples(root, resolve_media=False):
            record = convert(sample, path_of)
            text = json.dumps(record, ensure_ascii=False)
            if as_lines:
                handle.write(text + "\n")
            else:
                handle.write((",\n" if count else "") + "  " + text)
            count += 1
        handle.write("" if as_lines else "\n]\n")
    return {"samples": count, "out": str(out), "format": format, "dataset_info": dataset_info_entry(out, format)}


def to_llava(sample: Sample, path_of: Any) -> dict[str, Any]:
    images, videos, turns, system = [], [], [], []
    for message in sample.messages:
        text = _placeholder_text(message.content, images, videos, path_of)
        if message.role == "system":
            system.append(text)
        else:
            turns.append({"from": LLAVA_ROLES[message.role], "value": text})
    record: dict[str, Any] = {"id": sample.id}
    if images:
        record["image"] = images[0] if len(images) == 1 else images
    if videos:
        record["video"] = videos[0] if len(videos) == 1 else videos
    if system:  # LLaVA has no system turn; kept as a key so nothing is lost
        record["system"] = "\n".join(system)
    record["conversations"] = turns
    return record


def to_sharegpt(sample: Sample, path_of: Any) -> dict[str, Any]:
    images: list[str] = []
    videos: list[str] = []
    messages = [
        {"role": message.role, "content": _placeholder_text(message.content, images, videos, path_of)}
        for message in sample.messages
    ]
    record: dict[str, Any] = {"messages": messages}
    if images:
        record["images"] = images
    if videos:
        record["videos"] = videos
    return record


def _placeholder_text(parts: list[Any], images: list[str], videos: list[str], path_of: Any) -> str:
    pieces = []
    for part in parts:
        if isinstance(part, ImagePart):
            images.append(path_of(part.image))
            pieces.append("<image>")
        elif isinstance(part, VideoPart):
            videos.append(path_of(part.video))
            pieces.append("<video>")
        elif isinstance(part, TextPart):
            pieces.append(part.text)
    return "\n".join(pieces)


def dataset_info_entry(out: Path, format: str) -> dict[str, Any]:
    """What to add to LLaMA-Factory's data/dataset_info.json for this file."""
    if format == "llava":
        return {
            out.stem: {
                "file_name": out.name,
                "formatting": "sharegpt",
                "columns": {"messages": "conversations", "images": "image", "videos": "video", "system": "system"},
            }
        }
    return {
        out.stem: {
            "file_name": out.name,
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images", "videos": "videos"},
            "tags": {
                "role_tag": "role",
                "content_tag": "content",
                "user_tag": "user",
                "assistant_tag": "assistant",
                "system_tag": "system",
            },
        }
    }
