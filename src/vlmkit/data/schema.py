"""The one record type every stage speaks: Sample -> Message -> Part, stored as samples.jsonl.

A dataset is a folder: `samples.jsonl` (one Sample per line) and `media/` (content-addressed files).
Media paths inside samples are relative to the dataset folder; `Sample.resolved(root)` makes them absolute.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import DataError
from ..io import dumps_line, iter_jsonl, link_or_copy, open_new
from ..provenance import file_sha256

SAMPLES_FILE = "samples.jsonl"
MEDIA_DIR = "media"


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"] = "text"
    text: str


class ImagePart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["image"] = "image"
    image: str  # path relative to the dataset folder, absolute path, URL or data URL


class VideoPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["video"] = "video"
    video: str


Part = TextPart | ImagePart | VideoPart


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: list[Part] = Field(discriminator=None)

    @field_validator("content", mode="before")
    @classmethod
    def _string_content(cls, value: Any) -> Any:
        # Plain-string content is the common chat shorthand; store it in the list form.
        return [{"type": "text", "text": value}] if isinstance(value, str) else value

    def text(self) -> str:
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    messages: list[Message]
    answers: list[str] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id", mode="before")
    @classmethod
    def _id_str(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _check_roles(self) -> Sample:
        roles = [m.role for m in self.messages if m.role != "system"]
        if not roles:
            raise ValueError("messages: needs at least one user message")
        if roles[0] != "user":
            raise ValueError("messages: the first non-system message must be from the user")
        for a, b in zip(roles, roles[1:]):
            if a == b:
                raise ValueError(f"messages: two '{a}' messages in a row; turns must alternate user/assistant")
        if not self.id.strip():
            raise ValueError("id: must not be empty")
        return self

    # --- views used by collate / infer / eval -------------------------------------------------
    def question(self) -> str:
        """Text of the last user message (the question that `answers` refers to)."""
        return next(m.text() for m in reversed(self.messages) if m.role == "user")

    def target(self) -> str | None:
        """Text of the final assistant turn, if the sample ends with one."""
        last = self.messages[-1]
        return last.text() if last.role == "assistant" else None

    def prompt_messages(self) -> list[Message]:
        """The conversation up to the last question (drops a trailing assistant turn)."""
        return self.messages[:-1] if self.messages[-1].role == "assistant" else list(self.messages)

    def media(self, kind: str | None = None) -> list[str]:
        out = []
        for message in self.messages:
            for part in message.content:
                if isinstance(part, ImagePart) and kind in (None, "image"):
                    out.append(part.image)
                elif isinstance(part, VideoPart) and kind in (None, "video"):
                    out.append(part.video)
        return out

    def resolved(self, root: str | os.PathLike | None) -> Sample:
        """A copy whose relative media paths are joined to the dataset folder."""
        if root is None:
            return self
        root = Path(root)

        def fix(value: str) -> str:
            if "://" in value or value.startswith("data:") or os.path.isabs(value):
                return value
            return str(root / value)

        data = self.model_dump()
        for message in data["messages"]:
            for part in message["content"]:
                for key in ("image", "video"):
                    if key in part:
                        part[key] = fix(part[key])
        return Sample.model_validate(data)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _format_validation(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"] if not str(x).startswith("function-"))
    return loc, err["msg"]


def parse_sample(obj: Any, *, path: object = None, record: object = None) -> Sample:
    """Validate one decoded JSON object; DataError names the file, record and field."""
    if not isinstance(obj, dict):
        raise DataError(f"expected a JSON object, got {type(obj).__name__}", path=path, record=record)
    try:
        return Sample.model_validate(obj)
    except ValidationError as exc:
        field, msg = _format_validation(exc)
        raise DataError(msg, path=path, record=record, field=field or None) from None


def samples_path(source: str | os.PathLike) -> Path:
    source = Path(source)
    return source / SAMPLES_FILE if source.is_dir() else source


def iter_samples(source: str | os.PathLike, *, resolve_media: bool = True) -> Iterator[Sample]:
    """Stream samples from a dataset folder (or a samples.jsonl file), validating each line."""
    path = samples_path(source)
    if not path.exists():
        raise DataError(f"no {SAMPLES_FILE} here (is this a vlmkit dataset folder?)", path=Path(source))
    root = path.parent if resolve_media else None
    seen: set[str] = set()
    for line, obj in iter_jsonl(path):
        sample = parse_sample(obj, path=path, record=f"line {line}")
        if sample.id in seen:
            raise DataError(f"duplicate id '{sample.id}'", path=path, record=f"line {line}")
        seen.add(sample.id)
        yield sample.resolved(root)


def read_samples(source: str | os.PathLike, *, resolve_media: bool = True) -> list[Sample]:
    return list(iter_samples(source, resolve_media=resolve_media))


class DatasetWriter:
    """Writes a dataset folder: samples.jsonl plus content-addressed media.

    Samples go to a temp file that is renamed into place on close, so a crashed import never leaves a
    half-written samples.jsonl that looks complete. Media are stored once per distinct content.
    """

    def __init__(self, root: str | os.PathLike, *, overwrite: bool = False):
        self.root = Path(root)
        self.overwrite = overwrite
        final = self.root / SAMPLES_FILE
        if final.exists() and not overwrite:
            raise DataError(f"{final} already exists (pass --overwrite to replace it)", path=final)
        (self.root / MEDIA_DIR).mkdir(parents=True, exist_ok=True)
        self._tmp = self.root / f".{SAMPLES_FILE}.partial"
        self._handle = open_new(self._tmp)  # never through a symlink planted at that name
        self._ids: set[str] = set()
        self._media: set[str] = set()  # media this writer stored or reused; on overwrite, the rest is removed
        self.samples_written = 0
        self.media_stored = 0  # distinct media files in this dataset (written now, or reused from a killed run)
        self.media_duplicates = 0  # references to a file already stored by this writer

    # --- media -------------------------------------------------------------------------------
    def add_media_bytes(self, data: bytes, suffix: str) -> str:
        """Store bytes under media/<aa>/<sha256><suffix>; returns the path relative to the dataset."""

        def write(tmp: Path) -> None:
            with open_new(tmp, "wb") as handle:
                handle.write(data)

        return self._store(hashlib.sha256(data).hexdigest(), suffix, write)

    def add_media_file(self, path: str | os.PathLike, *, link: bool = False) -> str:
        """Copy a file (e.g. a video, never re-encoded) into the store, hashing it in chunks. `link`: hard-link
        it instead where the filesystem allows (the source is another dataset's immutable media file)."""
        path = Path(path)

        def write(tmp: Path) -> None:
            tmp.unlink(missing_ok=True)
            if link:
                link_or_copy(path, tmp)
            else:
                with open(path, "rb") as source, open_new(tmp, "wb") as handle:
                    shutil.copyfileobj(source, handle)

        return self._store(file_sha256(path), path.suffix, write)

    def keep_media(self, rel: str) -> None:
        """Mark a media file placed in media/ by the caller (split links them) as part of this dataset."""
        self._media.add(rel)

    def _store(self, digest: str, suffix: str, write_to: Any) -> str:
        rel = f"{MEDIA_DIR}/{digest[:2]}/{digest}{suffix.lower()}"
        if rel in self._media:
            self.media_duplicates += 1
            return rel
        target = self.root / rel
        if target.is_symlink():  # planted: replace the link, never write to or trust what it points at
            target.unlink()
        if not target.is_file():  # a file left by an earlier (killed) run has the right content by its name
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".partial")
            write_to(tmp)
            os.replace(tmp, target)
        self._media.add(rel)
        self.media_stored += 1
        return rel

    def _remove_unused_media(self) -> None:
        """On overwrite, media of the replaced dataset that the new one does not use are deleted."""
        media = self.root / MEDIA_DIR
        for path in sorted(media.rglob("*"), reverse=True):
            rel = path.relative_to(self.root).as_posix()
            if path.is_dir() and not path.is_symlink():
                if not any(path.iterdir()):
                    path.rmdir()
            elif rel not in self._media:
                path.unlink()

    # --- samples -----------------------------------------------------------------------------
    def write(self, sample: Sample | dict[str, Any]) -> Sample:
        if not isinstance(sample, Sample):
            sample = parse_sample(sample)
        if sample.id in self._ids:
            raise DataError(f"duplicate sample id '{sample.id}'", path=self.root / SAMPLES_FILE)
        self._ids.add(sample.id)
        self._handle.write(dumps_line(sample.to_json()) + "\n")
        self.samples_written += 1
        return sample

    def close(self) -> Path:
        if not self._handle.closed:
            self._handle.close()
            os.replace(self._tmp, self.root / SAMPLES_FILE)
            if self.overwrite:
                self._remove_unused_media()
        return self.root / SAMPLES_FILE

    def abort(self) -> None:
        if not self._handle.closed:
            try:
                self._handle.close()
            except OSError:  # flushing the buffer fails again on a full disk; the file is discarded anyway
                pass
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
