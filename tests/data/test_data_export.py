"""Export to LLaVA / LLaMA-Factory ShareGPT, checked by importing the export back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures_data import write_llava, write_sharegpt
from synthetic_media import write_video

from vlmkit.cli import main
from vlmkit.data.export import export_dataset
from vlmkit.data.importers import import_dataset
from vlmkit.data.schema import read_samples
from vlmkit.errors import DataError


def content_of(folder: Path) -> list:
    """Samples as (roles, parts with media replaced by their bytes) so different folders compare."""
    out = []
    for sample in read_samples(folder):
        turns = []
        for message in sample.messages:
            parts = []
            for part in message.content:
                if part.type == "text":
                    parts.append(("text", part.text))
                else:
                    parts.append((part.type, Path(getattr(part, part.type)).read_bytes()))
            turns.append((message.role, parts))
        out.append((turns, sample.target()))
    return out


@pytest.fixture
def llava_dataset(tmp_path):
    source = write_llava(tmp_path / "llava")
    import_dataset(source, tmp_path / "ds", media_root=tmp_path / "llava" / "images", progress=False)
    return tmp_path / "ds"


def test_llava_round_trip(tmp_path, llava_dataset):
    result = export_dataset(llava_dataset, tmp_path / "export" / "llava.json", format="llava")
    assert result["samples"] == 3
    records = json.loads((tmp_path / "export" / "llava.json").read_text())
    first = records[0]
    assert first["conversations"][0] == {"from": "human", "value": "<image>\nWhat colour is the bus?"}
    assert (tmp_path / "export" / first["image"]).is_file()  # relative to the export's folder
    assert "image" not in records[2]  # the text-only record stays text-only
    assert records[1]["conversations"][0]["value"] == "Describe\n<image>\nbriefly."

    # the export points at the dataset's media (../ds/media/...): outside its folder, so re-importing widens it
    import_dataset(
        tmp_path / "export" / "llava.json",
        tmp_path / "again",
        format="llava",
        media_root=tmp_path / "ds",
        progress=False,
    )
    assert content_of(tmp_path / "again") == content_of(llava_dataset)


def test_sharegpt_counts_match_and_round_trip(tmp_path):
    video = write_video(tmp_path / "clip.mp4", n_frames=4)
    sharegpt = write_sharegpt(tmp_path / "sg", video=video)  # the video is an absolute path outside sg/
    import_dataset(sharegpt, tmp_path / "ds", progress=False, allow_outside_paths=True)
    export_dataset(tmp_path / "ds", tmp_path / "out.jsonl", format="sharegpt", absolute_paths=True)
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(records) == 2
    for record in records:  # LLaMA-Factory's rule: one path per placeholder
        text = "".join(m["content"] for m in record["messages"])
        assert text.count("<image>") == len(record.get("images", []))
        assert text.count("<video>") == len(record.get("videos", []))
        assert all(
            Path(p).is_absolute() and Path(p).is_file() for p in record.get("images", []) + record.get("videos", [])
        )
    assert records[1]["videos"][0].endswith(".mp4")
    import_dataset(
        tmp_path / "out.jsonl", tmp_path / "again", format="sharegpt", progress=False, allow_outside_paths=True
    )
    assert content_of(tmp_path / "again") == content_of(tmp_path / "ds")


def test_export_errors_and_cli(tmp_path, llava_dataset, capsys):
    with pytest.raises(DataError, match="export format must be one of llava, sharegpt"):
        export_dataset(llava_dataset, tmp_path / "x.json", format="alpaca")
    with pytest.raises(DataError, match="no samples.jsonl here"):
        export_dataset(tmp_path, tmp_path / "x.json", format="llava")
    assert not (tmp_path / "x.json").exists()
    main(["data", "export", str(llava_dataset), "--format", "sharegpt", "--out", str(tmp_path / "sg.json")])
    out = capsys.readouterr().out
    assert "wrote 3 samples" in out and '"formatting": "sharegpt"' in out
    assert len(json.loads((tmp_path / "sg.json").read_text())) == 3
