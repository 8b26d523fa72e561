"""samples.jsonl: validating reader/writer with errors that name the file, line and field."""

import json

import pytest

from vlmkit.data.schema import DatasetWriter, Sample, iter_samples, read_samples
from vlmkit.errors import DataError

GOOD = {
    "id": "docvqa-1",
    "messages": [
        {"role": "user", "content": [{"type": "image", "image": "media/ab/x.png"}, {"type": "text", "text": "Total?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "$1,234.56"}]},
    ],
    "answers": ["$1,234.56", "1,234.56"],
    "meta": {"source": "docvqa", "question_type": ["table/list"]},
}


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_round_trip_through_the_writer_keeps_every_field(tmp_path):
    with DatasetWriter(tmp_path / "ds") as writer:
        rel = writer.add_media_bytes(b"fake-png-bytes", ".PNG")
        again = writer.add_media_bytes(b"fake-png-bytes", ".png")
        record = json.loads(json.dumps(GOOD))
        record["messages"][0]["content"][0]["image"] = rel
        writer.write(record)
    assert rel == again and writer.media_stored == 1 and writer.media_duplicates == 1
    assert rel.startswith("media/") and rel.endswith(".png")
    [sample] = read_samples(tmp_path / "ds")
    assert sample.answers == GOOD["answers"] and sample.meta == GOOD["meta"]
    assert sample.question() == "Total?" and sample.target() == "$1,234.56"
    assert sample.media("image") == [str(tmp_path / "ds" / rel)]  # resolved against the dataset folder
    assert (tmp_path / "ds" / rel).read_bytes() == b"fake-png-bytes"


def test_plain_string_content_is_accepted():
    s = Sample.model_validate({"id": 7, "messages": [{"role": "user", "content": "hi"}]})
    assert s.id == "7" and s.messages[0].content[0].text == "hi" and s.target() is None


@pytest.mark.parametrize(
    "mutate, field, reason",
    [
        (lambda r: r.pop("id"), "id", "Field required"),
        (lambda r: r["messages"][0].update(role="robot"), "messages.0.role", "Input should be"),
        (lambda r: r["messages"][0]["content"].append({"type": "audio", "audio": "x"}), "messages.0.content.2", ""),
        (lambda r: r.update(answers="not-a-list"), "answers", "valid list"),
        (
            lambda r: r["messages"].append({"role": "assistant", "content": "again"}),
            None,
            "two 'assistant' messages in a row",
        ),
        (lambda r: r.update(extra_key=1), "extra_key", "Extra inputs"),
    ],
)
def test_bad_records_name_file_line_and_field(tmp_path, mutate, field, reason):
    bad = json.loads(json.dumps(GOOD))
    bad["id"] = "second"
    mutate(bad)
    path = write_lines(tmp_path / "samples.jsonl", [json.dumps(GOOD), json.dumps(bad)])
    with pytest.raises(DataError) as info:
        read_samples(path)
    message = str(info.value)
    assert str(path) in message and "line 2" in message and reason in message
    if field:
        assert f"field '{field}" in message


def test_malformed_json_duplicate_ids_and_non_utf8_are_named(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", [json.dumps(GOOD), "{not json"])
    with pytest.raises(DataError, match=r"a.jsonl: record line 2: malformed JSON"):
        read_samples(path)
    path = write_lines(tmp_path / "b.jsonl", [json.dumps(GOOD), "", json.dumps(GOOD)])
    with pytest.raises(DataError, match=r"record line 3: duplicate id 'docvqa-1'"):
        read_samples(path)
    path = tmp_path / "c.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n\xff\xfe{}\n")
    with pytest.raises(DataError, match=r"record line 2: not valid UTF-8"):
        read_samples(path)
    with pytest.raises(DataError, match="no samples.jsonl here"):
        list(iter_samples(tmp_path / "missing"))


def test_a_failed_import_leaves_no_samples_file(tmp_path):
    with pytest.raises(RuntimeError):
        with DatasetWriter(tmp_path / "ds") as writer:
            writer.write(GOOD)
            raise RuntimeError("crash mid-import")
    assert not (tmp_path / "ds" / "samples.jsonl").exists()
    assert not list((tmp_path / "ds").glob(".samples.jsonl*"))
