"""Hostile JSON: deep nesting and oversized records fail with the file and position, in flat memory."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import pytest

from vlmkit import json_limits
from vlmkit.data.importers import import_dataset
from vlmkit.errors import DataError
from vlmkit.io import iter_jsonl

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
MEMORY_LIMIT = 2 << 30  # bytes of address space; the unguarded parser needed ~23 GB for the deep file


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def import_in_subprocess(source, out):
    code = "import sys; from vlmkit.cli import main; main(sys.argv[1:])"
    argv = [sys.executable, "-c", code, "data", "import", str(source), "-o", str(out), "-f", "llava"]
    return subprocess.run(
        argv, capture_output=True, text=True, env=ENV, timeout=120, preexec_fn=_limit_memory, check=False
    )


@pytest.mark.parametrize(
    "name,text",
    [
        ("deep.json", "[" * 100_000),
        ("deep_key.json", '{"data": ' + "[" * 100_000),
        ("deep_object.json", '{"a": ' + '{"a": ' * 100_000),
        ("deep.jsonl", "[" * 100_000 + "\n"),
    ],
)
def test_deeply_nested_json_fails_cleanly_in_bounded_memory(tmp_path, name, text):
    source = tmp_path / name
    source.write_text(text)
    out = import_in_subprocess(source, tmp_path / "out")
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr and "MemoryError" not in out.stderr
    assert str(source) in out.stderr and f"nested deeper than {json_limits.MAX_JSON_DEPTH} levels" in out.stderr


def test_nested_records_within_the_limit_still_import(tmp_path):
    record = {
        "id": "0",
        "conversations": [{"from": "human", "value": "q?"}, {"from": "gpt", "value": "a"}],
        "extra": [[[{"x": [1, 2, {"y": 3}]}]]],
    }
    for name, text in [("ok.json", json.dumps([record, record])), ("wrapped.json", json.dumps({"data": [record]}))]:
        (tmp_path / name).write_text(text)
        report = import_dataset(tmp_path / name, tmp_path / f"out-{name}", format="llava", progress=False)
        assert report["samples_written"] == (2 if name == "ok.json" else 1)


def test_oversized_jsonl_line_is_reported_with_its_line(tmp_path, monkeypatch):
    monkeypatch.setattr(json_limits, "MAX_RECORD_BYTES", 1000)
    small = {"id": "0", "conversations": [{"from": "human", "value": "q?"}, {"from": "gpt", "value": "a"}]}
    big = {**small, "id": "1", "blob": "x" * 5000}
    source = tmp_path / "big.jsonl"
    source.write_text(json.dumps(small) + "\n" + json.dumps(big) + "\n" + json.dumps({**small, "id": "2"}) + "\n")
    with pytest.raises(DataError, match=r"big.jsonl: record line 2: record larger than 1,000 bytes"):
        import_dataset(source, tmp_path / "fail", format="llava", progress=False)
    report = import_dataset(source, tmp_path / "skip", format="llava", on_error="skip", progress=False)
    assert report["samples_written"] == 2 and report["skipped"][0]["location"] == "line 2"


def test_oversized_array_item_is_reported_with_its_position(tmp_path, monkeypatch):
    monkeypatch.setattr(json_limits, "MAX_RECORD_BYTES", 100_000)
    small = {"id": "0", "conversations": [{"from": "human", "value": "q?"}, {"from": "gpt", "value": "a"}]}
    big = {**small, "id": "1", "blob": ["x" * 1000] * 500}
    source = tmp_path / "big.json"
    source.write_text(json.dumps([small, big]))
    with pytest.raises(DataError, match=r"big.json: record #1: record larger than 100,000 bytes near byte"):
        import_dataset(source, tmp_path / "fail", format="llava", progress=False)


def test_iter_jsonl_bounds_depth_and_size(tmp_path, monkeypatch):
    path = tmp_path / "samples.jsonl"
    path.write_text('{"ok": 1}\n' + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(DataError, match=r"samples.jsonl: record line 2: JSON nested deeper"):
        list(iter_jsonl(path))
    monkeypatch.setattr(json_limits, "MAX_RECORD_BYTES", 50)
    path.write_text('{"ok": 1}\n{"long": "' + "y" * 200 + '"}\n')
    with pytest.raises(DataError, match=r"record line 2: record larger than 50 bytes"):
        list(iter_jsonl(path))
