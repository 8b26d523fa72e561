"""The import loop: source -> converter -> DatasetWriter, with --on-error and import_report.json.

Accounting rule (checked at the end of every import): samples written + samples skipped = samples
expected, where a record is expected to give one sample, or one per question with `--turns split`.
Nothing valid is dropped silently: every skip is listed with its file, location and reason.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ...errors import DataError, as_disk_full
from ...io import check_output_dir, dumps_line, write_json
from ...progress import discard
from ..schema import DatasetWriter, Sample
from . import detect_format, get_converter
from .base import ConvertContext, ImportOptions, Located, RawRecord, RecordError, Unsupported
from .media_store import MediaStore
from .sources import open_source

REPORT_FILE = "import_report.json"
ON_ERROR = ("fail", "skip")
TURNS = ("split", "keep")


def import_dataset(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    format: str = "auto",
    turns: str | None = None,
    on_error: str = "fail",
    split: str | None = None,
    config: str | None = None,
    media_root: str | os.PathLike | None = None,
    prompt: str | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    allow_outside_paths: bool = False,
    max_text_chars: int = 100_000,
) -> dict[str, Any]:
    """Import SOURCE into the dataset folder OUT; returns the report also written to OUT/import_report.json."""
    if on_error not in ON_ERROR:
        raise DataError(f"--on-error must be one of {', '.join(ON_ERROR)}, not '{on_error}'")
    if turns is not None and turns not in TURNS:
        raise DataError(f"--turns must be one of {', '.join(TURNS)}, not '{turns}'")
    if media_root is not None and not Path(media_root).is_dir():
        raise DataError("--media-root is not a folder", path=media_root)
    if Path(str(source)).exists():  # a hub id is not a folder that could be overwritten
        check_output_dir(out, {"SOURCE": source, "--media-root": media_root})
    started = time.perf_counter()
    src = open_source(source, split=split, config=config)
    converter = _detect(src, source) if format == "auto" else get_converter(format)
    options = ImportOptions(
        turns=turns, prompt=prompt, media_root=Path(media_root) if media_root else None, max_text_chars=max_text_chars
    )
    out = Path(out)
    tally = _Tally(on_error)
    writer = DatasetWriter(out, overwrite=overwrite)
    media = MediaStore(writer, allow_outside=allow_outside_paths)
    report: dict[str, Any] = {
        "source": str(source),
        "format": converter.name,
        "format_detected": format == "auto",
        "turns": turns or converter.default_turns,
        "on_error": on_error,
    }
    bar = _progress(src.total, progress)
    try:
        for item in src.records():
            bar.update(1)
            tally.records_read += 1
            if isinstance(item, Located):
                tally.expected += 1
                tally.problem(item.source, item.location, item.reason, None, 1)
                continue
            tally.count_split(item.split)
            units = converter.expected_units(item.data, options)
            tally.expected += units
            _convert_one(converter, item, ConvertContext(media, options, item), writer, tally, units)
            bar.set_postfix(samples=tally.written, skipped=tally.skipped_units, refresh=False)
        if tally.written == 0:
            raise DataError(
                "no samples imported"
                + (f" ({tally.skipped_units} skipped; see {out / REPORT_FILE})" if tally.skipped else ""),
                path=source,
            )
    except BaseException as exc:
        writer.abort()
        discard(bar)
        full = as_disk_full(exc)
        report.update(
            tally.summary(media),
            status="failed",
            error=str(full or exc),
            seconds=round(time.perf_counter() - started, 3),
        )
        try:
            write_json(out / REPORT_FILE, report)
        except OSError:
            if full is None:
                raise
        if full is not None:
            raise full from None
        raise
    writer.close()
    bar.close()
    report.update(tally.summary(media), status="ok", seconds=round(time.perf_counter() - started, 3))
    if report["samples_written"] + report["samples_skipped"] != report["samples_expected"]:
        report["status"] = "count_mismatch"  # a bug in a converter; the numbers say where to look
    write_json(out / REPORT_FILE, report)
    return report


def _detect(src: Any, source: object) -> Any:
    first = src.first_record()
    if first is None:  # say why there is nothing to look at (empty file, malformed JSON, ...)
        for item in src.records():
            if isinstance(item, Located):
                raise DataError(item.reason, path=item.source, record=item.location)
            break
    return detect_format(first, source=source)


def _convert_one(
    converter: Any, item: RawRecord, ctx: ConvertContext, writer: DatasetWriter, tally: _Tally, units: int
) -> None:
    try:
        outcomes = list(converter.convert(item, ctx))
    except Unsupported as exc:  # skipped and counted whatever --on-error says
        tally.problem(item.source, item.location, exc.reason, exc.field, units, always_skip=True)
        tally.unsupported += units
        return
    except RecordError as exc:
        tally.problem(item.source, item.location, exc.reason, exc.field, units)
        return
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        # a value of a shape no converter check anticipated (pydantic errors are ValueErrors too):
        # still this record's problem, reported with its location rather than as a traceback
        tally.problem(
            item.source, item.location, f"unexpected content ({type(exc).__name__}: {_first_line(exc)})", None, units
        )
        return
    for outcome in outcomes:
        if isinstance(outcome, RecordError):
            tally.problem(item.source, item.location, outcome.reason, outcome.field, outcome.units)
            continue
        too_long = _too_long(outcome, ctx.options.max_text_chars)
        if too_long:
            tally.problem(item.source, item.location, too_long, None, 1)
        else:
            tally.write(writer, outcome)


def _too_long(sample: Sample, limit: int) -> str | None:
    """A text field over the cap (a 20 MB answer is a broken record, and would be stored twice)."""
    texts = [("answers", a) for a in sample.answers]
    for message in sample.messages:
        content = message.content if isinstance(message.content, list) else [message.content]
        texts += [(f"{message.role} text", p.text) for p in content if getattr(p, "text", None)]
    for field, text in texts:
        if len(text) > limit:
            return f"{field} is {len(text):,} characters, over the {limit:,} limit (--max-text-chars)"
    return None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "no details"


class _Tally:
    """Counts and the skip list; under --on-error fail the first problem becomes the DataError."""

    def __init__(self, on_error: str):
        self.on_error = on_error
        self.records_read = 0
        self.expected = 0
        self.written = 0
        self.skipped: list[dict[str, Any]] = []
        self.skipped_units = 0
        self.renamed_ids = 0
        self.unsupported = 0  # samples skipped because vlmkit can't represent them (audio)
        self.duplicate_samples = 0
        self.duplicate_examples: list[str] = []
        self.splits: Counter[str] = Counter()
        self._ids: set[str] = set()
        self._contents: set[bytes] = set()

    def count_split(self, split: str | None) -> None:
        if split:
            self.splits[split] += 1

    def problem(
        self, source: str, location: str, reason: str, field: str | None, units: int, always_skip: bool = False
    ) -> None:
        if self.on_error == "fail" and not always_skip:
            raise DataError(reason, path=source, record=location, field=field)
        entry = {"source": source, "location": location, "reason": reason, "samples": units}
        if field:
            entry["field"] = field
        self.skipped.append(entry)
        self.skipped_units += units

    def write(self, writer: DatasetWriter, sample: Sample) -> None:
        if sample.id in self._ids:  # two source records with one id: keep both, the second renamed
            base, n = sample.id, 2
            while f"{base}~{n}" in self._ids:
                n += 1
            sample = sample.model_copy(update={"id": f"{base}~{n}"})
            self.renamed_ids += 1
        self._ids.add(sample.id)
        content = sample.to_json()
        digest = hashlib.blake2b(
            dumps_line([content["messages"], content["answers"]]).encode(), digest_size=16
        ).digest()
        if digest in self._contents:  # kept (it is valid), but counted so `data stats` readers know
            self.duplicate_samples += 1
            if len(self.duplicate_examples) < 20:
                self.duplicate_examples.append(sample.id)
        self._contents.add(digest)
        writer.write(sample)
        self.written += 1

    def summary(self, media: MediaStore) -> dict[str, Any]:
        return {
            "records_read": self.records_read,
            "samples_expected": self.expected,
            "samples_written": self.written,
            "samples_skipped": self.skipped_units,
            "records_skipped": len(self.skipped),
            "images_stored": media.images_stored,
            "image_references": media.image_refs,
            "images_decoded": media.images_decoded,
            "videos_stored": media.videos_stored,
            "video_references": media.video_refs,
            "duplicates": {
                "images": media.image_refs - media.images_stored,  # references to an image already stored
                "videos": media.video_refs - media.videos_stored,
                "samples": self.duplicate_samples,  # same messages and answers as an earlier sample; kept
                "ids_renamed": self.renamed_ids,  # a repeated source id; kept as <id>~2
                "sample_examples": self.duplicate_examples,
            },
            "splits": dict(self.splits),
            "samples_unsupported": self.unsupported,
            "outside_paths_refused": media.outside_refused,
            **(
                {
                    "warning": f"records from several splits ({', '.join(sorted(self.splits))}) were imported "
                    "together; meta.split tells them apart"
                }
                if len(self.splits) > 1
                else {}
            ),
            "skipped": self.skipped,
        }


def _progress(total: int | None, enabled: bool | None) -> Any:
    from ...progress import progress

    # enabled=None: a bar on a terminal, a plain line every few seconds in a log
    return progress(total, "import", "rec", enabled)
