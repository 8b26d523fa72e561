"""Readers for text annotation files: JSON (an array, `{"data": [...]}`, pandas' column orientation),
JSON Lines and CSV/TSV, streamed record by record.

Problems that are not one record's fault (an empty file, malformed JSON, bytes that are not UTF-8)
come out as `Located` items in the stream, so the runner can stop or report them like bad records.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ... import json_limits
from ...json_limits import JsonLimitError, iter_lines, loads_line, size_error, stream_items, top_level_list_key
from .base import Item, Located, RawRecord, Source, shard_split


def _text_problem(path: Path) -> str | None:
    """Reasons a text file can't be read at all: empty, or not UTF-8 by its byte-order mark."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if not head.strip():
        return "file is empty"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "file is UTF-16 encoded; save it as UTF-8"
    return None


@dataclass
class JsonSource(Source):
    path: Path = Path(".")

    def _first_char(self) -> bytes:
        with open(self.path, "rb") as handle:
            head = handle.read(1 << 16).lstrip(b"\xef\xbb\xbf").lstrip()
        return head[:1]

    def records(self) -> Iterator[Item]:
        problem = _text_problem(self.path)
        if problem:
            yield Located(str(self.path), "file", problem)
            return
        first = self._first_char()
        if first == b"[":
            yield from self._stream(None)
        elif first == b"{":
            yield from self._object_records()
        else:
            yield Located(str(self.path), "file", "malformed JSON: expected an array or an object at the start")

    def _stream(self, key: str | None) -> Iterator[Item]:
        """The items of the top-level array (key None) or of the array under `key`, one record each; depth and
        record size are bounded (json_limits), so a hostile file fails with its position, not out of memory."""
        import ijson

        count = 0
        with open(self.path, "rb") as handle:
            _skip_bom(handle)
            try:
                for data in stream_items(handle, key):
                    if isinstance(data, dict):
                        yield RawRecord(data, str(self.path), f"#{count}", shard_split(self.path), self.path.parent)
                    else:
                        yield Located(str(self.path), f"#{count}", f"expected a JSON object, got {type(data).__name__}")
                    count += 1
            except ijson.JSONError as exc:
                yield Located(str(self.path), f"#{count}", _json_reason(exc, count))
            except JsonLimitError as exc:
                yield Located(str(self.path), f"#{count}", f"{exc}; the rest of the file can't be read")

    def _object_records(self) -> Iterator[Item]:
        """`{"data": [...]}` is streamed; a column-oriented table (pandas `to_json`) is read whole."""
        try:
            key = self._list_key()
        except JsonLimitError as exc:
            yield Located(str(self.path), "file", str(exc))
            return
        if key is not None:
            yield from self._stream(key)
            return
        if self.path.stat().st_size > json_limits.MAX_RECORD_BYTES:
            yield Located(str(self.path), "file", size_error(f" ({self.path.stat().st_size:,} bytes in one object)"))
            return
        try:
            with open(self.path, "rb") as handle:
                table = loads_line(handle.read().removeprefix(b"\xef\xbb\xbf"))
        except JsonLimitError as exc:
            yield Located(str(self.path), "file", str(exc))
            return
        except UnicodeDecodeError as exc:
            yield Located(str(self.path), f"byte {exc.start}", f"not valid UTF-8 ({exc.reason})")
            return
        except json.JSONDecodeError as exc:
            yield Located(str(self.path), f"line {exc.lineno}", f"malformed JSON: {exc.msg} (column {exc.colno})")
            return
        columns = [v for v in table.values() if isinstance(v, dict)]
        if columns and len(columns) == len(table):  # {"image": {"0": ..}, "question": {"0": ..}}
            index = list(columns[0])
            for row_key in index:
                data = {name: col.get(row_key) for name, col in table.items()}
                yield RawRecord(data, str(self.path), f"#{row_key}", shard_split(self.path), self.path.parent)
        else:
            yield RawRecord(table, str(self.path), "#0", shard_split(self.path), self.path.parent)

    def _list_key(self) -> str | None:
        """The top-level key whose value is a list of objects (e.g. "data"), found without loading the file."""
        import ijson

        with open(self.path, "rb") as handle:
            _skip_bom(handle)
            try:
                return top_level_list_key(handle)
            except ijson.JSONError:
                return None


def _skip_bom(handle: Any) -> None:
    if handle.read(3) != b"\xef\xbb\xbf":
        handle.seek(0)


def _json_reason(exc: Exception, count: int) -> str:
    text = exc.args[0] if exc.args else str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    first = str(text).strip().splitlines()[0] if str(text).strip() else "unreadable"
    where = f"after record {count - 1}" if count else "before the first record"
    if "UTF8" in first or "UTF-8" in first:
        return f"not valid UTF-8 ({where}); the rest of the file can't be read"
    return f"malformed JSON {where}: {first}; the rest of the file can't be read"


@dataclass
class JsonLinesSource(Source):
    path: Path = Path(".")

    def records(self) -> Iterator[Item]:
        problem = _text_problem(self.path)
        if problem:
            yield Located(str(self.path), "file", problem)
            return
        with open(self.path, "rb") as handle:
            for number, raw in iter_lines(handle):
                where = f"line {number}"
                if raw is None:
                    yield Located(str(self.path), where, size_error())
                    continue
                if number == 1:
                    raw = raw.removeprefix(b"\xef\xbb\xbf")
                if not raw.strip():
                    continue
                try:
                    data = loads_line(raw)
                except JsonLimitError as exc:
                    yield Located(str(self.path), where, str(exc))
                    continue
                except UnicodeDecodeError as exc:
                    yield Located(str(self.path), where, f"not valid UTF-8 ({exc.reason} at byte {exc.start})")
                    continue
                except json.JSONDecodeError as exc:
                    yield Located(str(self.path), where, f"malformed JSON: {exc.msg} (column {exc.colno})")
                    continue
                if not isinstance(data, dict):
                    yield Located(str(self.path), where, f"expected a JSON object, got {type(data).__name__}")
                    continue
                yield RawRecord(data, str(self.path), where, shard_split(self.path), self.path.parent)


def allow_large_fields() -> None:
    """Benchmark TSVs carry base64 images in a cell, far above the csv module's 128 KiB default."""
    csv.field_size_limit(2**31 - 1)


@dataclass
class CsvSource(Source):
    path: Path = Path(".")

    def records(self) -> Iterator[Item]:
        problem = _text_problem(self.path)
        if problem:
            yield Located(str(self.path), "file", problem)
            return
        allow_large_fields()
        bad_lines: list[tuple[int, str]] = []
        delimiter = "\t" if self.path.suffix.lower() == ".tsv" else ","
        with open(self.path, "rb") as handle:
            lines = _decoded_lines(handle, bad_lines)
            reader = csv.DictReader(lines, delimiter=delimiter)
            try:
                for row in reader:
                    while bad_lines:
                        number, reason = bad_lines.pop(0)
                        yield Located(str(self.path), f"line {number}", reason)
                    where = f"line {reader.line_num}"
                    if None in row:  # more cells than header columns
                        yield Located(
                            str(self.path),
                            where,
                            f"{len(row) - 1 + len(row[None])} cells but {len(reader.fieldnames or [])} header columns",
                        )
                        continue
                    yield RawRecord(dict(row), str(self.path), where, shard_split(self.path), self.path.parent)
            except csv.Error as exc:
                yield Located(str(self.path), f"line {reader.line_num}", f"malformed CSV: {exc}")
            for number, reason in bad_lines:
                yield Located(str(self.path), f"line {number}", reason)


def _decoded_lines(handle: Any, bad_lines: list[tuple[int, str]]) -> Iterator[str]:
    """UTF-8 lines for the csv module; a line that isn't UTF-8 is left out and noted in `bad_lines`."""
    for number, raw in enumerate(handle, start=1):
        if number == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad_lines.append((number, f"not valid UTF-8 ({exc.reason} at byte {exc.start})"))
