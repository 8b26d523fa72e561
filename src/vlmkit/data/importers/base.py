"""What every importer shares: the raw record, the per-record error (record_error.py), the Converter base class.

An importer is a Converter: it turns one raw source record (a dict, as read from parquet, JSON or CSV)
into zero or more Samples. Reading files is `sources.py`'s job, storing media is `media_store.py`'s,
and the loop with error handling and the report is `runner.py`'s.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..schema import Sample
from .record_error import RecordError

if TYPE_CHECKING:
    from .media_store import MediaStore


class Unsupported(RecordError):
    """A record of a kind vlmkit does not import (audio): always skipped and counted, even under --on-error fail."""


@dataclass
class RawRecord:
    data: dict[str, Any]
    source: str  # file path or hub id the record came from
    location: str  # "row 12", "line 5", "record 3": where inside the source
    split: str | None = None  # the split named by the shard/file/hub split, if any
    base_dir: Path | None = None  # where relative media paths of this record resolve first

    def where(self) -> str:
        return f"{self.source} {self.location}"


@dataclass
class ImportOptions:
    turns: str | None = None  # "split" | "keep"; None = the format's default
    prompt: str | None = None  # the question put before a video caption
    media_root: Path | None = None  # folder that relative image/video paths point into
    max_text_chars: int = 100_000  # longest question/answer text kept; a longer one skips its record


@dataclass
class ConvertContext:
    """What a converter may use while converting one record."""

    media: MediaStore
    options: ImportOptions
    record: RawRecord

    def media_dirs(self) -> list[Path]:
        """Where relative media paths are looked up, in order: --media-root, then next to the source
        file, then the folders datasets usually unpack beside it (train.json -> train/, images/)."""
        dirs = [self.options.media_root] if self.options.media_root else []
        base = self.record.base_dir
        if base is not None:
            stem = Path(self.record.source).stem
            dirs += [base, base / stem, base / "images", base.parent / stem]
        return dirs


Outcome = Sample | RecordError


class Converter:
    """One source format. Subclasses set `name` and implement `convert` (and `claims` for --format auto)."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    default_turns: ClassVar[str] = "keep"

    def claims(self, keys: set[str], first: dict[str, Any]) -> bool:
        """True if a record with these top-level keys looks like this format."""
        return False

    def expected_units(self, data: dict[str, Any], options: ImportOptions) -> int:
        """How many samples this record should give; used to count what a failed record lost."""
        return 1

    def convert(self, record: RawRecord, ctx: ConvertContext) -> Iterable[Outcome]:
        raise NotImplementedError


# --- small helpers that several formats need -----------------------------------------------------


def require(data: dict[str, Any], *names: str) -> Any:
    """The value of the first present key among `names`; RecordError naming the keys if none is there."""
    for name in names:
        if name in data and data[name] is not None:
            return data[name]
    present = ", ".join(sorted(map(str, data))) or "none"
    wanted = " or ".join(f"'{n}'" for n in names)
    raise RecordError(f"missing {wanted} (keys present: {present})", field=names[0])


def first_present(data: dict[str, Any], *names: str, default: Any = None) -> Any:
    """The first key with a value; an empty CSV cell counts as no value."""
    for name in names:
        if data.get(name) is not None and data[name] != "":
            return data[name]
    return default


def question_text(value: Any, field: str = "question") -> str:
    if not isinstance(value, str):
        raise RecordError(f"question must be text, got {type(value).__name__}", field=field)
    text = value.strip()
    if not text:
        raise RecordError("empty question", field=field)
    return text


def answer_list(value: Any, field: str = "answers") -> list[str]:
    """Answers as a list of strings; None/empty strings dropped (test splits ship blank answers)."""
    if value is None:
        return []
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise RecordError(f"answers must be a list or a string, got {type(value).__name__}", field=field)
    out = []
    for item in value:
        if isinstance(item, dict):  # VQA-style {"answer": ..., "answer_confidence": ...}
            item = item.get("answer")
        if item is None:
            continue
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str):
            raise RecordError(f"answer must be text, got {type(item).__name__}", field=field)
        if item.strip():
            out.append(item.strip())
    return out


def majority(answers: list[str]) -> str | None:
    """The most frequent answer (first seen wins ties): the training target for 10-answer datasets."""
    if not answers:
        return None
    counts = Counter(answers)
    best = max(counts.values())
    return next(a for a in answers if counts[a] == best)


def vqa_sample(
    sample_id: str,
    image: str | None,
    question: str,
    answers: list[str],
    meta: dict[str, Any],
    target: str | None = None,
) -> Sample:
    """The usual single-turn VQA sample: user [image, question] -> assistant [target]."""
    content: list[dict[str, Any]] = []
    if image is not None:
        content.append({"type": "image", "image": image})
    content.append({"type": "text", "text": question})
    messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
    target = target if target is not None else (answers[0] if answers else None)
    if target is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": target}]})
    return Sample.model_validate(
        {
            "id": sample_id,
            "messages": messages,
            "answers": answers,
            "meta": {k: v for k, v in meta.items() if v is not None},
        }
    )


def record_id(data: dict[str, Any], record: RawRecord, *names: str) -> str:
    """The source's own id if it has one, else a stable id from the file and row."""
    value = first_present(data, *names)
    if value is not None and str(value).strip():
        return str(value).strip()
    stem = Path(record.source).stem if record.source else "record"
    where = re.sub(r"[^\w.-]", "", record.location)  # "row 12" -> "row12", "#3" -> "3"
    return f"{stem}-{where}"


@dataclass
class Located:
    """A problem that is not one record's fault (unreadable file, malformed JSON): counted as one record."""

    source: str
    location: str
    reason: str
    fields: dict[str, Any] = field(default_factory=dict)


# --- what the readers (readers_arrow.py, readers_text.py) produce --------------------------------

Item = RawRecord | Located
SHARD_SPLIT = re.compile(r"^(?P<split>[A-Za-z][\w.]*?)-\d{5}-of-\d{5}")
KNOWN_SPLITS = {"train", "training", "val", "valid", "validation", "dev", "test", "testing", "eval"}


@dataclass
class Source:
    """A stream of raw records plus what `--format auto` needs to look at first."""

    label: str
    total: int | None = None

    def records(self) -> Iterator[Item]:
        raise NotImplementedError

    def first_record(self) -> dict[str, Any] | None:
        for item in self.records():
            if isinstance(item, RawRecord):
                return item.data
        return None


def shard_split(path: Path) -> str | None:
    """'test-00000-of-00002.parquet' -> 'test'; 'train.json' -> 'train'; 'mix665k.json' -> None."""
    match = SHARD_SPLIT.match(path.stem)
    if match:
        return match.group("split")
    return path.stem if path.stem.lower() in KNOWN_SPLITS else None
