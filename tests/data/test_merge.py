"""`vlmkit data merge`: several datasets into one, with seeded sampling, media stored once, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from synthetic_media import make_image, write_video

from vlmkit.data.merge import merge_datasets, parse_source
from vlmkit.data.schema import DatasetWriter, read_samples
from vlmkit.errors import DataError


def png(seed: int) -> bytes:
    import io

    buffer = io.BytesIO()
    make_image(32, 32, seed=seed).save(buffer, format="PNG")
    return buffer.getvalue()


def write(root: Path, prefix: str, n: int, *, shared_image: bytes, video: Path | None = None) -> Path:
    """n samples; the first shows `shared_image` (present in every source), the others their own image."""
    with DatasetWriter(root) as writer:
        for i in range(n):
            image = writer.add_media_bytes(shared_image if i == 0 else png(sum(map(ord, prefix)) * 10 + i), ".png")
            content = [{"type": "image", "image": image}, {"type": "text", "text": f"{prefix} question {i}?"}]
            if video is not None and i == 1:
                content.insert(0, {"type": "video", "video": writer.add_media_file(video)})
            writer.write(
                {
                    "id": f"{prefix}-{i}",
                    "messages": [
                        {"role": "user", "content": content},
                        {"role": "assistant", "content": [{"type": "text", "text": f"answer {i}"}]},
                    ],
                    "answers": [f"answer {i}"],
                    "meta": {"source": prefix},
                }
            )
    return root


@pytest.fixture
def sources(tmp_path):
    shared = png(999)
    video = write_video(tmp_path / "clip.mp4", n_frames=4)
    return (
        write(tmp_path / "docvqa", "docvqa", 5, shared_image=shared, video=video),
        write(tmp_path / "chartqa", "chartqa", 8, shared_image=shared),
    )


def test_merge_takes_all_or_a_seeded_sample_and_stores_media_once(sources, tmp_path):
    doc, chart = sources
    report = merge_datasets([doc, (chart, 3)], tmp_path / "mix", seed=1, progress=False)
    merged = read_samples(tmp_path / "mix")
    ids = [s.id for s in merged]
    assert sorted(i for i in ids if i.startswith("docvqa")) == [f"docvqa-{i}" for i in range(5)]
    assert len([i for i in ids if i.startswith("chartqa")]) == 3 and len(ids) == 8
    for sample in merged:  # every media path resolves inside the merged folder, with the source's bytes
        for ref in sample.media("image") + sample.media("video"):
            assert Path(ref).is_file() and Path(ref).is_relative_to(tmp_path / "mix")
    original = {s.id: s for s in read_samples(doc) + read_samples(chart)}
    for sample in merged:
        assert [Path(p).read_bytes() for p in sample.media("image") + sample.media("video")] == [
            Path(p).read_bytes() for p in original[sample.id].media("image") + original[sample.id].media("video")
        ]
        assert sample.answers == original[sample.id].answers and sample.meta == original[sample.id].meta
    files = [p for p in (tmp_path / "mix" / "media").rglob("*") if p.is_file()]
    assert len(files) == report["media_stored"] == len({p.read_bytes() for p in files})  # each content once
    on_disk = json.loads((tmp_path / "mix" / "merge_report.json").read_text())
    assert on_disk["sources"] == [
        {"path": str(doc), "samples": 5, "requested": None, "taken": 5},
        {"path": str(chart), "samples": 8, "requested": 3, "taken": 3},
    ]
    again = merge_datasets([doc, (chart, 3)], tmp_path / "again", seed=1, progress=False)
    assert (tmp_path / "again" / "samples.jsonl").read_text().replace(str(tmp_path / "again"), "") == (
        tmp_path / "mix" / "samples.jsonl"
    ).read_text().replace(str(tmp_path / "mix"), "")
    assert again["samples"] == 8


def test_no_shuffle_keeps_source_order(sources, tmp_path):
    doc, chart = sources
    merge_datasets([chart, doc], tmp_path / "mix", shuffle=False, progress=False)
    assert [s.id for s in read_samples(tmp_path / "mix")] == [f"chartqa-{i}" for i in range(8)] + [
        f"docvqa-{i}" for i in range(5)
    ]


def test_clashing_ids_name_both_sources_and_write_nothing(sources, tmp_path):
    doc, _ = sources
    with pytest.raises(DataError, match="docvqa-0.*is in .*docvqa too"):
        merge_datasets([doc, doc], tmp_path / "mix", progress=False)
    assert not (tmp_path / "mix" / "samples.jsonl").exists()


def test_source_syntax():
    assert parse_source("data/en-train:5000") == (Path("data/en-train"), 5000)
    assert parse_source("data/en-train") == (Path("data/en-train"), None)
    assert parse_source("data/run:v2") == (Path("data/run:v2"), None)


def test_merge_cli(sources, tmp_path):
    doc, chart = sources
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "vlmkit",
            "data",
            "merge",
            str(doc),
            f"{chart}:2",
            "--out",
            str(tmp_path / "mix"),
            "--seed",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "7 samples (docvqa 5, chartqa 2)" in out.stdout
    assert len(read_samples(tmp_path / "mix")) == 7
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "vlmkit",
            "data",
            "merge",
            str(doc),
            str(tmp_path / "nowhere"),
            "--out",
            str(tmp_path / "other"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "nowhere" in out.stderr and "Traceback" not in out.stderr


def test_a_samples_jsonl_source_and_hard_linked_media(sources, tmp_path):
    """A source given as its samples.jsonl resolves media against its folder, and the merged media are hard
    links to the source files (same filesystem), not second copies."""
    import os

    doc, _ = sources
    merge_datasets([doc / "samples.jsonl"], tmp_path / "mix", progress=False)
    merged = read_samples(tmp_path / "mix")
    original = {s.id: s for s in read_samples(doc)}
    for sample in merged:
        for ref, source_ref in zip(sample.media("image"), original[sample.id].media("image")):
            assert os.stat(ref).st_ino == os.stat(source_ref).st_ino
