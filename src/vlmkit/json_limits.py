"""Bounds for reading JSON a user hands us: nesting depth and bytes per record.

A 100 KB file of `[` x 100,000 makes a prefix-tracking stream parser grow without bound and makes
`json.loads` overflow the stack; a single 20 GB line would be read whole. Every JSON/JSONL reader checks
these limits first and reports the file and position instead.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import IO, Any

MAX_JSON_DEPTH = int(os.environ.get("VLMKIT_MAX_JSON_DEPTH", "100"))
MAX_RECORD_BYTES = int(os.environ.get("VLMKIT_MAX_RECORD_BYTES", str(256 * 1024 * 1024)))

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


class JsonLimitError(ValueError):
    """A JSON value is nested deeper, or is larger, than the reader allows."""


def depth_error(where: str = "") -> str:
    return f"JSON nested deeper than {MAX_JSON_DEPTH} levels{where} (limit: VLMKIT_MAX_JSON_DEPTH)"


def size_error(where: str = "") -> str:
    return f"record larger than {MAX_RECORD_BYTES:,} bytes{where} (limit: VLMKIT_MAX_RECORD_BYTES)"


def check_depth(raw: bytes) -> None:
    """Raise JsonLimitError if `raw` nests deeper than MAX_JSON_DEPTH. Cheap for ordinary lines: the count of
    opening brackets bounds the depth, so only lines with many brackets are scanned (outside strings)."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub(b'""', raw)):
        if match.group() in (b"[", b"{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise JsonLimitError(depth_error())
        else:
            depth -= 1


def loads_line(raw: bytes) -> Any:
    """json.loads for one JSONL line, with the depth bound (JsonLimitError) and the usual decode errors."""
    check_depth(raw)
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise JsonLimitError(depth_error()) from None


def iter_lines(handle: IO[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """(line_number, bytes) for each line of a binary handle; a line over MAX_RECORD_BYTES is skipped in chunks
    (memory stays flat) and comes out as (number, None) so the caller can report it."""
    number = 0
    while True:
        raw = handle.readline(MAX_RECORD_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_RECORD_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):
                raw = handle.readline(1 << 20)
            yield number, None
            continue
        yield number, raw


class CountingReader:
    """A binary handle that counts the bytes read, so a stream parser can say where it is."""

    def __init__(self, handle: IO[bytes]):
        self._handle, self.position = handle, 0

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self.position += len(data)
        return data


def stream_items(handle: IO[bytes], key: str | None = None) -> Iterator[Any]:
    """The items of a top-level JSON array (key None) or of the array under top-level `key`, streamed with
    bounded depth and record size. Raises JsonLimitError (message names the byte offset) or ijson.JSONError."""
    import ijson

    reader = CountingReader(handle)
    record_depth = 1 if key is None else 2  # the depth of the array whose items are records
    depth, builder, started, pending, in_target = 0, None, 0, None, key is None
    for event, value in ijson.basic_parse(reader, use_float=True):
        opening = event in ("start_map", "start_array")
        closing = event in ("end_map", "end_array")
        if closing:
            depth -= 1
        level = depth  # the depth of the container this event sits in
        if opening:
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise JsonLimitError(depth_error(f" near byte {reader.position:,}"))
        if builder is not None:
            builder.event(event, value)
            if reader.position - started > MAX_RECORD_BYTES:
                raise JsonLimitError(size_error(f" near byte {reader.position:,}"))
            if closing and depth == record_depth:
                yield builder.value
                builder = None
        elif in_target:
            if closing and depth < record_depth:  # the records' array has ended
                return
            if level == record_depth and opening:
                builder, started = ijson.ObjectBuilder(), reader.position
                builder.event(event, value)
            elif level == record_depth:
                yield value
        elif level == 1:  # key is not None: looking for it among the top-level keys
            if event == "map_key":
                pending = value
            else:
                in_target = event == "start_array" and pending == key
                pending = None


def top_level_list_key(handle: IO[bytes]) -> str | None:
    """The first top-level key whose value is an array, found by streaming with bounded depth (no prefixes kept)."""
    import ijson

    reader = CountingReader(handle)
    depth, pending = 0, None
    for event, value in ijson.basic_parse(reader):
        if event in ("end_map", "end_array"):
            depth -= 1
        level = depth
        if event in ("start_map", "start_array"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise JsonLimitError(depth_error(f" near byte {reader.position:,}"))
        if level == 1:
            if event == "map_key":
                pending = value
                continue
            if event == "start_array" and pending is not None:
                return pending
            pending = None
    return None
