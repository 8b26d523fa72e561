"""Crash-safe file helpers: a torn last line (kill -9 mid-write) is repaired before appending."""

from vlmkit.io import JsonlAppender, atomic_write_text, iter_jsonl, read_jsonl


def test_appender_repairs_a_torn_tail_and_keeps_complete_lines(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": 1}\n{"id": 2}\n{"id": 3, "pred', encoding="utf-8")
    with JsonlAppender(path) as out:
        out.write({"id": 3, "prediction": "x"})
    assert [r["id"] for r in read_jsonl(path)] == [1, 2, 3]


def test_torn_tail_can_be_skipped_when_reading(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": 1}\n{"id": 2', encoding="utf-8")
    assert [obj["id"] for _, obj in iter_jsonl(path, skip_torn_tail=True)] == [1]


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "x" / "f.txt"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two" and [p.name for p in path.parent.iterdir()] == ["f.txt"]
