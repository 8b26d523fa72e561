"""Importers on parquet in each real distributed schema (written by `datasets`, sharded like the hub)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from fixtures_data import (
    docvqa_rows,
    features,
    half_red_left,
    image_bytes,
    struct,
    vitextvqa_rows,
    write_hf_parquet,
)
from PIL import Image, ImageOps

from vlmkit.data.importers import import_dataset
from vlmkit.data.schema import read_samples


def samples_by_id(folder: Path) -> dict:
    return {s.id: s for s in read_samples(folder)}


def stored_image(folder: Path, sample) -> Path:
    return folder / sample.media("image")[0]


def test_docvqa_sharded_folder(tmp_path):
    rows = docvqa_rows(6)
    write_hf_parquet(tmp_path / "src" / "data", rows, features("docvqa"), split="validation", shards=2)
    report = import_dataset(tmp_path / "src" / "data", tmp_path / "out", format="docvqa", progress=False)

    assert report["records_read"] == 6 and report["samples_written"] == 6 and report["samples_skipped"] == 0
    assert (report["image_references"], report["images_stored"], report["images_decoded"]) == (6, 3, 3)
    assert report["duplicates"]["images"] == 3 and report["duplicates"]["samples"] == 0
    samples = samples_by_id(tmp_path / "out")
    assert set(samples) == {f"docvqa-{49150 + i}" for i in range(6)}
    for i, row in enumerate(rows):
        sample = samples[f"docvqa-{49150 + i}"]
        assert sample.question() == row["question"]
        assert sample.answers == row["answers"]
        assert sample.target() == row["answers"][0]
        assert sample.meta["question_type"] == row["question_types"]
        assert sample.meta["doc_id"] == str(row["docId"])
        assert sample.meta["split"] == "validation"
        # the question sits where a VLM expects it: [image, text] in the user turn
        assert [p.type for p in sample.messages[0].content] == ["image", "text"]
        # upright PNG bytes are stored unchanged, content-addressed by their sha256
        stored = stored_image(tmp_path / "out", sample).read_bytes()
        assert stored == row["image"]["bytes"]
        assert stored_image(tmp_path / "out", sample).stem == hashlib.sha256(stored).hexdigest()
    # two questions on one page share one stored file
    assert samples["docvqa-49150"].media() == samples["docvqa-49151"].media()
    assert samples["docvqa-49150"].media() != samples["docvqa-49152"].media()
    report_file = json.loads((tmp_path / "out" / "import_report.json").read_text())
    assert report_file["status"] == "ok" and report_file["format"] == "docvqa"


def test_docvqa_test_split_without_answers(tmp_path):
    rows = docvqa_rows(2)
    for row in rows:
        row["answers"] = None
    write_hf_parquet(tmp_path / "src", rows, features("docvqa"), split="test")
    import_dataset(tmp_path / "src", tmp_path / "out", format="docvqa", progress=False)
    for sample in read_samples(tmp_path / "out"):
        assert sample.answers == [] and sample.target() is None and sample.question().startswith("What is the total")


def test_infovqa_keeps_types_and_drops_ocr(tmp_path):
    rows = [
        {
            "questionId": "65718",
            "question": "Which country has the highest share?",
            "answers": ["China", "china"],
            "answer_type": ["single span"],
            "image": struct(image_bytes(4, "PNG"), "38255.png"),
            "image_url": "https://example.org/38255.png",
            "operation/reasoning": ["comparison"],
            "ocr": json.dumps({"PAGE": [{"text": "x" * 500}]}),
            "data_split": "val",
        }
    ]
    write_hf_parquet(tmp_path / "src", rows, features("infovqa"), split="validation")
    report = import_dataset(tmp_path / "src", tmp_path / "out", format="auto", progress=False)
    assert report["format"] == "infovqa"
    [sample] = read_samples(tmp_path / "out")
    assert sample.id == "infovqa-65718"
    assert sample.answers == ["China", "china"]
    assert sample.meta["answer_type"] == ["single span"]
    assert sample.meta["operation_reasoning"] == ["comparison"]
    assert sample.meta["doc_id"] == "https://example.org/38255.png"
    assert "ocr" not in sample.meta


@pytest.mark.parametrize("spelling", ["chartqa_m4", "chartqa_lmms"])
def test_chartqa_both_spellings(tmp_path, spelling):
    if spelling == "chartqa_m4":
        rows = [
            {
                "image": struct(image_bytes(0, "PNG"), "a.png"),
                "query": "What is the peak value?",
                "label": ["42"],
                "human_or_machine": 0,
            },
            {
                "image": struct(image_bytes(1, "PNG"), "b.png"),
                "query": "Is the sum above 100?",
                "label": ["Yes"],
                "human_or_machine": 1,
            },
        ]
    else:
        rows = [
            {
                "type": "human_test",
                "question": "What is the peak value?",
                "answer": "42",
                "image": struct(image_bytes(0, "PNG"), "a.png"),
            },
            {
                "type": "augmented_test",
                "question": "Is the sum above 100?",
                "answer": "Yes",
                "image": struct(image_bytes(1, "PNG"), "b.png"),
            },
        ]
    write_hf_parquet(tmp_path / "src", rows, features(spelling), split="test")
    report = import_dataset(tmp_path / "src", tmp_path / "out", format="auto", progress=False)
    assert report["format"] == "chartqa"
    samples = read_samples(tmp_path / "out")
    assert [s.question() for s in samples] == ["What is the peak value?", "Is the sum above 100?"]
    assert [s.answers for s in samples] == [["42"], ["Yes"]]
    assert [s.meta["origin"] for s in samples] == ["human", "augmented"]


def test_vizwiz_parquet_keeps_all_ten_answers(tmp_path):
    answers = ["red"] * 6 + ["dark red"] * 3 + ["unanswerable"]
    rows = [
        {
            "question_id": "VizWiz_val_00000000",
            "image": struct(image_bytes(2), "VizWiz_val_00000000.jpg"),
            "question": "What color is this?",
            "answers": answers,
            "category": "other",
        }
    ]
    write_hf_parquet(tmp_path / "src", rows, features("vizwiz_lmms"), split="val")
    report = import_dataset(tmp_path / "src", tmp_path / "out", format="auto", progress=False)
    assert report["format"] == "vizwiz"
    [sample] = read_samples(tmp_path / "out")
    assert sample.answers == answers and len(sample.answers) == 10
    assert sample.target() == "red"  # the most common answer is the training target
    assert sample.meta["category"] == "other"
    assert sample.meta["image_name"] == "VizWiz_val_00000000.jpg"  # the struct's own file name when it has one


def test_textvqa_parquet(tmp_path):
    base = {
        "image_id": "003a8ae2ef43b901",
        "question_tokens": ["what", "brand"],
        "image_width": 48,
        "image_height": 32,
        "flickr_original_url": "u",
        "flickr_300k_url": "v",
        "image_classes": ["Bottle"],
        "set_name": "val",
        "ocr_tokens": ["COKE", "ZERO"],
    }
    rows = [
        {
            **base,
            "question_id": 34602,
            "question": "what brand is this?",
            "image": struct(image_bytes(3), "t.jpg"),
            "answers": ["coke"] * 8 + ["coca cola"] * 2,
        },
        {
            **base,
            "question_id": 34603,
            "question": "what does it say?",
            "image": struct(image_bytes(3), "t.jpg"),
            "answers": [""] * 10,
        },
    ]
    write_hf_parquet(tmp_path / "src", rows, features("textvqa"), split="validation")
    report = import_dataset(tmp_path / "src", tmp_path / "out", format="auto", progress=False)
    assert report["format"] == "textvqa" and report["images_stored"] == 1
    first, second = read_samples(tmp_path / "out")
    assert first.answers == ["coke"] * 8 + ["coca cola"] * 2 and first.target() == "coke"
    assert first.meta["ocr_tokens"] == ["COKE", "ZERO"] and first.meta["image_id"] == "003a8ae2ef43b901"
    assert second.answers == [] and second.target() is None  # test-style blank answers


def test_vitextvqa_split_one_sample_per_qa_pair(tmp_path):
    rows = vitextvqa_rows()
    write_hf_parquet(tmp_path / "src", rows, features("vitextvqa"), split="train")
    report = import_dataset(tmp_path / "src", tmp_path / "out", progress=False)
    assert report["format"] == "vitextvqa" and report["turns"] == "split"
    assert report["records_read"] == 2 and report["samples_expected"] == 4 and report["samples_written"] == 4
    assert report["images_decoded"] == 2  # each image decoded once, though three samples use the first
    samples = samples_by_id(tmp_path / "out")
    assert list(samples) == ["vitextvqa-0-0", "vitextvqa-0-1", "vitextvqa-0-2", "vitextvqa-1-0"]
    convo = rows[0]["conversations"]
    for k in range(3):
        sample = samples[f"vitextvqa-0-{k}"]
        assert sample.question() == convo[2 * k]["content"]
        assert sample.target() == convo[2 * k + 1]["content"] and sample.answers == [convo[2 * k + 1]["content"]]
        assert sample.meta["turn"] == k and sample.meta["description"] == rows[0]["description"]
        assert [p.type for p in sample.messages[0].content] == ["image", "text"]
    assert samples["vitextvqa-0-0"].media() == samples["vitextvqa-0-2"].media()
    # typed by the Vietnamese question word (the data stats rules), for the vitextvqa task's breakdown
    assert [s.meta["question_type"] for s in samples.values()] == [
        "where",
        "how many / much",
        "what color",
        "what is this",
    ]
    stored = Image.open(stored_image(tmp_path / "out", samples["vitextvqa-1-0"]))
    assert stored.size == (48, 32)


def test_vitextvqa_keep_whole_conversation(tmp_path):
    write_hf_parquet(tmp_path / "src", vitextvqa_rows(), features("vitextvqa"), split="train")
    report = import_dataset(tmp_path / "src", tmp_path / "out", format="vitextvqa", turns="keep", progress=False)
    assert report["samples_expected"] == 2 and report["samples_written"] == 2
    first = samples_by_id(tmp_path / "out")["vitextvqa-0"]
    assert [m.role for m in first.messages] == ["user", "assistant"] * 3
    assert len(first.media("image")) == 1 and first.messages[0].content[0].type == "image"
    assert first.meta["question_type"] == "what color"  # of the last question, which `answers` refers to
    assert first.question() == "Biển hiệu màu gì?" and first.target() == "Biển hiệu màu đỏ."


def test_exif_rotated_image_is_stored_upright(tmp_path):
    rotated = half_red_left((40, 20), orientation=6)  # viewers rotate it 90 degrees clockwise
    upright = half_red_left((40, 20))
    rows = [
        {
            "questionId": "1",
            "question": "Which half is red?",
            "question_types": ["other"],
            "image": struct(rotated, "r.jpg"),
            "docId": 1,
            "ucsf_document_id": "a",
            "ucsf_document_page_no": "1",
            "answers": ["top"],
            "data_split": "val",
        },
        {
            "questionId": "2",
            "question": "Which half is red?",
            "question_types": ["other"],
            "image": struct(upright, "u.jpg"),
            "docId": 2,
            "ucsf_document_id": "b",
            "ucsf_document_page_no": "1",
            "answers": ["left"],
            "data_split": "val",
        },
    ]
    write_hf_parquet(tmp_path / "src", rows, features("docvqa"), split="validation")
    import_dataset(tmp_path / "src", tmp_path / "out", format="docvqa", progress=False)
    samples = samples_by_id(tmp_path / "out")

    rotated_path = stored_image(tmp_path / "out", samples["docvqa-1"])
    assert rotated_path.suffix == ".png"
    plain = Image.open(rotated_path)  # no exif_transpose: the pixels themselves are upright
    assert plain.size == (20, 40)
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(rotated))).convert("RGB")
    assert plain.convert("RGB").tobytes() == expected.tobytes()
    top, bottom = plain.convert("RGB").getpixel((10, 5)), plain.convert("RGB").getpixel((10, 35))
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60  # red on top after the turn

    upright_path = stored_image(tmp_path / "out", samples["docvqa-2"])
    assert upright_path.suffix == ".jpg" and upright_path.read_bytes() == upright


def test_save_to_disk_dataset_dict(tmp_path):
    import datasets

    train = datasets.Dataset.from_list(docvqa_rows(4), features=features("docvqa"))
    test = datasets.Dataset.from_list(docvqa_rows(2)[:1], features=features("docvqa"))
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(tmp_path / "saved"))

    report = import_dataset(tmp_path / "saved", tmp_path / "all", format="auto", progress=False)
    assert report["format"] == "docvqa" and report["records_read"] == 5
    assert report["splits"] == {"train": 4, "test": 1} and "warning" in report
    assert report["duplicates"]["ids_renamed"] == 1  # row 0 of test repeats train's questionId: kept, renamed
    assert len(read_samples(tmp_path / "all")) == 5

    only = import_dataset(tmp_path / "saved", tmp_path / "train", split="train", progress=False)
    assert only["samples_written"] == 4 and {s.meta["split"] for s in read_samples(tmp_path / "train")} == {"train"}


def test_datasets_streaming_code_path(tmp_path):
    """The hub code path (datasets.load_dataset(..., streaming=True)), pointed at local parquet files."""
    from vlmkit.data.importers.sources import HubSource

    write_hf_parquet(tmp_path / "repo" / "data", docvqa_rows(3), features("docvqa"), split="test")
    source = HubSource(str(tmp_path / "repo"), split="test")
    records = list(source.records())
    assert len(records) == 3
    image = records[0].data["image"]
    assert isinstance(image, dict) and image["bytes"] == docvqa_rows(3)[0]["image"]["bytes"]  # not decoded


def test_folder_with_several_splits_filters_by_split(tmp_path):
    write_hf_parquet(tmp_path / "data", docvqa_rows(4), features("docvqa"), split="train", shards=2)
    write_hf_parquet(tmp_path / "data", docvqa_rows(2), features("docvqa"), split="test")
    report = import_dataset(tmp_path / "data", tmp_path / "out", split="test", progress=False)
    assert report["records_read"] == 2 and report["splits"] == {"test": 2}


def test_vizwiz_parquet_test_split_submission_names_the_images(tmp_path):
    """The lmms-lab parquet stores no file name (the image struct's path is empty): the submission's image
    names come from question_id, the image stem, as the EvalAI server expects."""
    from vlmkit.eval import evaluate

    rows = [
        {
            "question_id": f"VizWiz_test_{i:08d}",
            "image": struct(image_bytes(i), None),
            "question": f"What is item {i}?",
            "answers": [],
            "category": "other",
        }
        for i in (0, 7)
    ]
    write_hf_parquet(tmp_path / "src", rows, features("vizwiz_lmms"), split="test")
    import_dataset(tmp_path / "src", tmp_path / "out", format="vizwiz", progress=False)
    samples = read_samples(tmp_path / "out")
    assert [s.meta["image_name"] for s in samples] == ["VizWiz_test_00000000.jpg", "VizWiz_test_00000007.jpg"]
    evaluate(
        lambda requests: ["Yes."] * len(requests),
        "vizwiz",
        samples,
        tmp_path / "run",
        submission=tmp_path / "submission.json",
    )
    assert json.loads((tmp_path / "submission.json").read_text(encoding="utf-8")) == [
        {"image": "VizWiz_test_00000000.jpg", "answer": "yes"},
        {"image": "VizWiz_test_00000007.jpg", "answer": "yes"},
    ]


def test_chartqa_and_infovqa_tasks_break_down_by_the_keys_the_importers_write(tmp_path):
    """The tasks' declared grouping keys are the importers' meta names: a human-only ChartQA test split
    (one origin, so no automatic breakdown) is still reported per origin, InfoVQA per operation/reasoning."""
    from vlmkit.eval import evaluate

    chart = [
        {"type": "human_test", "question": f"Peak {i}?", "answer": "42", "image": struct(image_bytes(i, "PNG"), None)}
        for i in range(2)
    ]
    write_hf_parquet(tmp_path / "chart", chart, features("chartqa_lmms"), split="test")
    import_dataset(tmp_path / "chart", tmp_path / "chart-out", format="chartqa", progress=False)
    result = evaluate(
        lambda requests: ["42"] * len(requests), "chartqa", tmp_path / "chart-out", tmp_path / "chart-run"
    )
    assert result.summary["groups"]["origin"]["human"]["n"] == 2

    info = [
        {
            "questionId": str(65718 + i),
            "question": f"Share {i}?",
            "answers": ["china"],
            "answer_type": ["single span"],
            "image": struct(image_bytes(i, "PNG"), f"{i}.png"),
            "image_url": f"https://example.org/{i}.png",
            "operation/reasoning": ["comparison"],
            "ocr": "{}",
            "data_split": "val",
        }
        for i in range(2)
    ]
    write_hf_parquet(tmp_path / "info", info, features("infovqa"), split="validation")
    import_dataset(tmp_path / "info", tmp_path / "info-out", format="infovqa", progress=False)
    result = evaluate(
        lambda requests: ["China"] * len(requests), "infovqa", tmp_path / "info-out", tmp_path / "info-run"
    )
    assert result.summary["groups"]["operation_reasoning"]["comparison"]["n"] == 2
    assert result.summary["groups"]["answer_type"]["single span"]["n"] == 2
