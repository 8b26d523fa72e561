"""Importers on JSON / JSON Lines / CSV sources with image folders and real mp4 videos."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
from fixtures_data import image_bytes, vizwiz_answers, write_llava, write_sharegpt, write_vizwiz_json
from synthetic_media import write_video

from vlmkit.data.importers import import_dataset
from vlmkit.data.media import probe_video
from vlmkit.data.schema import read_samples


def by_id(folder: Path) -> dict:
    return {s.id: s for s in read_samples(folder)}


def parts(message) -> list:
    return [(p.type, getattr(p, "text", None)) for p in message.content]


def test_vizwiz_original_json_and_image_folder(tmp_path):
    annotations = write_vizwiz_json(tmp_path / "vizwiz", n=3, split="train")
    report = import_dataset(annotations, tmp_path / "out", format="auto", progress=False)
    assert report["format"] == "vizwiz" and report["samples_written"] == 3
    samples = by_id(tmp_path / "out")
    sample = samples["vizwiz-VizWiz_train_00000001"]
    assert sample.question() == "What is this thing number 1?"
    assert sample.answers == ["thing 1"] * 7 + ["unanswerable"] * 3  # all ten, in order
    assert sample.target() == "thing 1"
    assert sample.meta["answer_confidence"] == ["yes"] * 7 + ["maybe"] * 3
    assert sample.meta["answerable"] == 1 and sample.meta["answer_type"] == "other"
    stored = (tmp_path / "out" / sample.media()[0]).read_bytes()
    assert stored == (tmp_path / "vizwiz" / "train" / "VizWiz_train_00000001.jpg").read_bytes()


def test_vizwiz_folder_source_and_media_root(tmp_path):
    write_vizwiz_json(tmp_path / "v", n=2, split="val")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "v" / "val").rename(tmp_path / "elsewhere" / "val")
    report = import_dataset(
        tmp_path / "v", tmp_path / "out", format="vizwiz", media_root=tmp_path / "elsewhere" / "val", progress=False
    )
    assert report["samples_written"] == 2


def test_llava_placeholders_turns_and_text_only(tmp_path):
    path = write_llava(tmp_path / "llava")
    report = import_dataset(
        path, tmp_path / "out", format="auto", media_root=tmp_path / "llava" / "images", progress=False
    )
    assert report["format"] == "llava" and report["turns"] == "keep" and report["samples_written"] == 3
    samples = by_id(tmp_path / "out")
    first = samples["llava-000001"]
    assert [m.role for m in first.messages] == ["user", "assistant", "user", "assistant"]
    assert parts(first.messages[0]) == [("image", None), ("text", "What colour is the bus?")]
    assert parts(first.messages[2]) == [("text", "Is it moving?")]
    second = samples["llava-000002"]  # the image goes where <image> was, the literal is removed
    assert parts(second.messages[0]) == [("text", "Describe"), ("image", None), ("text", "briefly.")]
    text_only = samples["llava-text-1"]
    assert text_only.media() == [] and text_only.target() == "4"
    assert (tmp_path / "out" / second.media()[0]).read_bytes() == (
        tmp_path / "llava" / "images" / "coco" / "b.png"
    ).read_bytes()


def test_llava_split_gives_follow_up_questions_the_image(tmp_path):
    path = write_llava(tmp_path / "llava")
    report = import_dataset(
        path, tmp_path / "out", turns="split", media_root=tmp_path / "llava" / "images", progress=False
    )
    assert report["samples_expected"] == 4 and report["samples_written"] == 4
    samples = by_id(tmp_path / "out")
    follow_up = samples["llava-000001-1"]
    assert parts(follow_up.messages[0]) == [("image", None), ("text", "Is it moving?")]
    assert follow_up.media() == samples["llava-000001-0"].media() and follow_up.target() == "No."


def test_sharegpt_images_in_their_turns_and_video_copied(tmp_path):
    video = write_video(tmp_path / "clips" / "clip.mp4", n_frames=6)
    path = write_sharegpt(tmp_path / "sg", video=video)
    # the video is an absolute path outside the source folder: allowed only when asked
    report = import_dataset(path, tmp_path / "out", format="auto", progress=False, allow_outside_paths=True)
    assert report["format"] == "sharegpt" and report["samples_written"] == 2
    assert (report["video_references"], report["videos_stored"]) == (1, 1)
    first, second = read_samples(tmp_path / "out")
    assert parts(first.messages[0]) == [("image", None), ("text", "Who are they?")]
    assert parts(first.messages[2]) == [("text", "Compare with"), ("image", None)]
    assert (tmp_path / "out" / first.messages[2].content[1].image).read_bytes() == (
        tmp_path / "sg" / "img" / "2.jpg"
    ).read_bytes()
    [stored_video] = second.media("video")
    assert stored_video.endswith(".mp4")
    stored = tmp_path / "out" / stored_video
    assert stored.read_bytes() == video.read_bytes()  # copied, not re-encoded
    assert Path(stored_video).stem == hashlib.sha256(video.read_bytes()).hexdigest()
    assert probe_video(stored)["frames"] == 6


def test_video_captions_webvid_csv(tmp_path):
    videos = tmp_path / "videos"
    write_video(videos / "001" / "1066.mp4", n_frames=4)
    write_video(videos / "2042.mp4", n_frames=5, size=(32, 24))
    csv_path = tmp_path / "results_2M_val.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["videoid", "contentUrl", "duration", "page_dir", "name"])
        writer.writerow(["1066", "https://example.org/1066.mp4", "PT00H00M02S", "001", "A square moves, slowly"])
        writer.writerow(["2042", "https://example.org/2042.mp4", "PT00H00M03S", "002", "Colours change"])
    report = import_dataset(
        csv_path, tmp_path / "out", format="auto", media_root=videos, prompt="What happens here?", progress=False
    )
    assert report["format"] == "video-captions" and report["samples_written"] == 2
    samples = by_id(tmp_path / "out")
    first = samples["video-1066"]
    assert parts(first.messages[0]) == [("video", None), ("text", "What happens here?")]
    assert first.target() == "A square moves, slowly" and first.answers == ["A square moves, slowly"]
    assert (tmp_path / "out" / first.media()[0]).read_bytes() == (videos / "001" / "1066.mp4").read_bytes()
    assert probe_video(tmp_path / "out" / samples["video-2042"].media()[0])["width"] == 32


def test_video_captions_json_with_paths(tmp_path):
    write_video(tmp_path / "v" / "31353427.mp4", n_frames=3)
    (tmp_path / "webvid.json").write_text(json.dumps([{"caption": "Tourists walk", "video_name": "31353427.mp4"}]))
    report = import_dataset(
        tmp_path / "webvid.json", tmp_path / "out", format="video-captions", media_root=tmp_path / "v", progress=False
    )
    [sample] = read_samples(tmp_path / "out")
    assert report["samples_written"] == 1 and sample.question() == "Describe this video."


def test_docvqa_original_json_data_key_is_streamed(tmp_path):
    (tmp_path / "documents").mkdir()
    (tmp_path / "documents" / "pybv0228_81.png").write_bytes(image_bytes(5, "PNG"))
    annotation = {
        "dataset_name": "docvqa",
        "dataset_split": "val",
        "dataset_version": "1.0",
        "data": [
            {
                "questionId": 49153,
                "question": "What is the ‘actual’ value per 1000, during the year 1975?",
                "question_types": ["figure/diagram"],
                "image": "documents/pybv0228_81.png",
                "docId": 14465,
                "ucsf_document_id": "pybv0228",
                "ucsf_document_page_no": "81",
                "answers": ["0.28"],
                "data_split": "val",
            }
        ],
    }
    (tmp_path / "val_v1.0.json").write_text(json.dumps(annotation, ensure_ascii=False), encoding="utf-8")
    report = import_dataset(tmp_path / "val_v1.0.json", tmp_path / "out", format="auto", progress=False)
    assert report["format"] == "docvqa"
    [sample] = read_samples(tmp_path / "out")
    assert sample.id == "docvqa-49153" and sample.answers == ["0.28"] and sample.meta["doc_id"] == "14465"


def test_pandas_column_oriented_json(tmp_path):
    (tmp_path / "train").mkdir()
    for i in range(2):
        (tmp_path / "train" / f"train_{i:05d}.jpg").write_bytes(image_bytes(i))
    table = {
        "image": {"0": "train_00000.jpg", "1": "train_00001.jpg"},
        "question": {"0": "What is it?", "1": "Which color?"},
        "answers": {"0": vizwiz_answers("cup", "mug"), "1": vizwiz_answers("red", "pink")},
        "answer_type": {"0": "other", "1": "other"},
        "answerable": {"0": 1, "1": 1},
    }
    (tmp_path / "train.json").write_text(json.dumps(table))
    report = import_dataset(tmp_path / "train.json", tmp_path / "out", format="auto", progress=False)
    assert report["format"] == "vizwiz" and report["samples_written"] == 2
    assert [s.target() for s in read_samples(tmp_path / "out")] == ["cup", "red"]


def test_jsonl_sharegpt_text_only_with_system(tmp_path):
    lines = [
        {
            "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
            "system": "Be brief.",
        }
    ]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    import_dataset(tmp_path / "d.jsonl", tmp_path / "out", progress=False)
    [sample] = read_samples(tmp_path / "out")
    assert [m.role for m in sample.messages] == ["system", "user", "assistant"]


def test_auto_says_clearly_when_it_cannot_tell(tmp_path):
    from vlmkit.errors import DataError

    (tmp_path / "x.json").write_text(json.dumps([{"foo": 1, "bar": "baz"}]))
    with pytest.raises(DataError, match=r"can't tell the format from the keys \['bar', 'foo'\]"):
        import_dataset(tmp_path / "x.json", tmp_path / "out", progress=False)


def test_existing_output_needs_overwrite(tmp_path):
    from vlmkit.errors import DataError

    path = write_llava(tmp_path / "llava")
    import_dataset(path, tmp_path / "out", media_root=tmp_path / "llava" / "images", progress=False)
    with pytest.raises(DataError, match="already exists"):
        import_dataset(path, tmp_path / "out", media_root=tmp_path / "llava" / "images", progress=False)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "media").rglob("*") if p.is_file()}
    report = import_dataset(
        path, tmp_path / "out", media_root=tmp_path / "llava" / "images", overwrite=True, progress=False
    )
    # the dataset's distinct images, none counted as a repeat; the files already there are not written again
    assert report["samples_written"] == 3 and report["duplicates"]["images"] == 0
    assert report["images_stored"] == len(before)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "media").rglob("*") if p.is_file()} == before
