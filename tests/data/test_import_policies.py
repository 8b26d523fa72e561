"""Import policies: media only from the source folder (or --media-root), capped text, audio records skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures_data import image_bytes

from vlmkit.data.importers import import_dataset
from vlmkit.data.schema import read_samples
from vlmkit.errors import DataError


def record(i: int, image: str | None = None, answer: str | None = None) -> dict:
    data = {
        "id": str(i),
        "conversations": [
            {"from": "human", "value": ("<image>\n" if image else "") + f"Question {i}?"},
            {"from": "gpt", "value": answer or f"Answer {i}"},
        ],
    }
    if image:
        data["image"] = image
    return data


def write(root: Path, records: list) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "data.json").write_text(json.dumps(records))
    return root / "data.json"


@pytest.fixture
def secret(tmp_path) -> Path:
    path = tmp_path / "elsewhere" / "secret.png"
    path.parent.mkdir()
    path.write_bytes(image_bytes(9, fmt="PNG"))
    return path


def test_media_outside_the_source_folder_are_refused_and_listed(tmp_path, secret):
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "images" / "ok.png").write_bytes(image_bytes(1, fmt="PNG"))
    source = write(src, [record(0, "images/ok.png"), record(1, str(secret)), record(2, "../elsewhere/secret.png")])
    with pytest.raises(DataError, match="outside the source folder"):
        import_dataset(source, tmp_path / "fail", format="llava", progress=False)
    report = import_dataset(source, tmp_path / "out", format="llava", on_error="skip", progress=False)
    assert report["samples_written"] == 1 and report["images_stored"] == 1
    assert report["outside_paths_refused"] == {"count": 2, "examples": [str(secret), "../elsewhere/secret.png"]}
    assert [e["location"] for e in report["skipped"]] == ["#1", "#2"]

    widened = import_dataset(
        source, tmp_path / "wide", format="llava", media_root=secret.parent, on_error="skip", progress=False
    )
    assert widened["samples_written"] == 3
    anything = import_dataset(source, tmp_path / "any", format="llava", allow_outside_paths=True, progress=False)
    assert anything["samples_written"] == 3 and anything["outside_paths_refused"]["count"] == 0


def test_a_symlink_out_of_the_source_folder_is_refused(tmp_path, secret):
    src = tmp_path / "src"
    src.mkdir()
    (src / "link.png").symlink_to(secret)
    report = import_dataset(
        write(src, [record(0, "link.png")] + [record(1)]),
        tmp_path / "out",
        on_error="skip",
        format="llava",
        progress=False,
    )
    assert report["outside_paths_refused"]["count"] == 1 and report["samples_written"] == 1


def test_huge_text_fields_skip_their_record_with_the_size(tmp_path):
    source = write(tmp_path / "src", [record(0), record(1, answer="x" * 2_000_001), record(2)])
    with pytest.raises(DataError, match=r"record #1: answers is 2,000,001 characters, over the 100,000 limit"):
        import_dataset(source, tmp_path / "fail", format="llava", progress=False)
    report = import_dataset(source, tmp_path / "out", format="llava", on_error="skip", progress=False)
    assert report["samples_written"] == 2 and "--max-text-chars" in report["skipped"][0]["reason"]
    assert max(len(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()) < 10_000
    report = import_dataset(source, tmp_path / "big", format="llava", max_text_chars=3_000_000, progress=False)
    assert report["samples_written"] == 3


def test_sharegpt_audio_records_are_skipped_with_a_reason_and_counted(tmp_path):
    def sharegpt(i, **extra):
        return {"messages": [{"role": "user", "content": f"Q{i}?"}, {"role": "assistant", "content": "A"}], **extra}

    records = [
        sharegpt(0),
        sharegpt(1, audios=["a.wav"]),
        {"messages": [{"role": "user", "content": "<audio>What is said?"}, {"role": "assistant", "content": "hi"}]},
        sharegpt(3),
    ]
    source = write(tmp_path / "src", records)
    report = import_dataset(source, tmp_path / "out", format="sharegpt", progress=False)  # even under fail
    assert report["samples_written"] == 2 and report["samples_unsupported"] == 2
    assert all("audio is not supported" in e["reason"] for e in report["skipped"])
    assert report["samples_written"] + report["samples_skipped"] == report["samples_expected"]
    assert all("<audio>" not in json.dumps(s.to_json()) for s in read_samples(tmp_path / "out"))
