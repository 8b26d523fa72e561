"""Aggregates on generated predictions files: overall and per-group scores, corpus metrics per group,
failure categories, latency, cost, and the files `score` writes."""

import json
import random

import numpy as np
import pytest
from eval_helpers import write_predictions

from vlmkit.eval import score
from vlmkit.eval.failures import categorize
from vlmkit.eval.predictions import read_predictions
from vlmkit.eval.scoring import grouping_keys, score_records
from vlmkit.eval.tasks import get_task, task_from_dict
from vlmkit.metrics import bleu, rouge_l


def docvqa_rows(n=30, seed=1):
    """Predictions whose ANLS is known by construction: exact (1), one substitution in ten chars (0.9), or
    a wholly different string of the same length (0)."""
    rng = random.Random(seed)
    rows, expected = [], []
    for i in range(n):
        answer = "".join(rng.choice("abcdefgh") for _ in range(10))
        kind = i % 3
        if kind == 0:
            pred, value = answer.upper(), 1.0
        elif kind == 1:
            pred, value = answer[:-1] + "z", 0.9
        else:
            pred, value = "0123456789", 0.0
        rows.append(
            {
                "id": f"q{i}",
                "question": f"q {i}?",
                "prediction": pred,
                "answers": [answer],
                "meta": {
                    "doc_type": ["form", "table", "letter", "memo"][i % 4],
                    "question_types": ["layout"] + (["table/list"] if i % 2 else []),
                    "image": f"doc{i}.png",
                },
                "latency_s": 0.1 + 0.01 * i,
            }
        )
        expected.append(value)
    return rows, expected


def test_docvqa_overall_groups_latency_and_cost(tmp_path):
    rows, expected = docvqa_rows()
    path = write_predictions(tmp_path / "run" / "predictions.jsonl", rows)
    summary = score(path, "docvqa", price_per_hour=2.5, make_plots=False)
    assert summary["overall"]["anls"] == pytest.approx(np.mean(expected))
    form = [v for i, v in enumerate(expected) if i % 4 == 0]
    assert summary["groups"]["doc_type"]["form"] == {"n": len(form), "anls": pytest.approx(np.mean(form))}
    tables = [v for i, v in enumerate(expected) if i % 2]
    assert summary["groups"]["question_types"]["table/list"]["anls"] == pytest.approx(np.mean(tables))
    assert summary["groups"]["question_types"]["layout"]["n"] == len(rows)  # multi-label: every sample
    assert "image" not in summary["groups"]  # id-like keys are not groups
    latencies = [r["latency_s"] for r in rows]
    assert summary["latency"]["p50_s"] == pytest.approx(np.percentile(latencies, 50))
    assert summary["latency"]["p95_s"] == pytest.approx(np.percentile(latencies, 95))
    rate = len(rows) / sum(latencies)
    assert summary["throughput"]["samples_per_s"] == pytest.approx(rate)
    assert summary["cost"]["usd_per_1k_images"] == pytest.approx(2.5 * 1000 / rate / 3600)
    # Files next to the predictions: summary, per-sample scores in file order, report.
    run = tmp_path / "run"
    assert json.loads((run / "scores.json").read_text())["overall"] == summary["overall"]
    lines = [json.loads(x) for x in (run / "sample_scores.jsonl").read_text().splitlines()]
    assert [x["id"] for x in lines] == [r["id"] for r in rows]
    assert [x["scores"]["anls"] for x in lines] == pytest.approx(expected)
    report = (run / "report.md").read_text()
    for section in ("## Scores", "## Speed and cost", "## By doc_type", "## By question_types", "## Failure analysis"):
        assert section in report


def vqa_expected(k, n=10):
    """Official VQA accuracy of a prediction matching k of n distinct-enough answers (leave-one-out)."""
    return (k * min(1, (k - 1) / 3) + (n - k) * min(1, k / 3)) / n


def test_vizwiz_accuracy_by_answer_type(tmp_path):
    rows, expected = [], []
    for i in range(20):
        k = i % 6
        answers = ["yes"] * k + [f"other{j}" for j in range(10 - k)]
        rows.append(
            {
                "id": i,
                "prediction": "Yes" if i % 2 else "yes",
                "answers": answers,
                "meta": {"answer_type": "yes/no" if k else "other"},
            }
        )
        expected.append(vqa_expected(k))
    summary, per_sample = score_records(
        read_predictions(write_predictions(tmp_path / "p.jsonl", rows)), get_task("vizwiz")
    )
    assert [r["scores"]["vqa_accuracy"] for r in per_sample] == pytest.approx(expected)
    assert summary["overall"]["vqa_accuracy"] == pytest.approx(np.mean(expected))
    assert summary["groups"]["answer_type"]["other"]["vqa_accuracy"] == 0.0


def test_chartqa_human_and_augmented_split(tmp_path):
    rows = [
        {
            "id": i,
            "prediction": ["10", "12", "abc"][i % 3],
            "answers": ["10.4"],
            "meta": {"type": "human_test" if i < 6 else "augmented_test"},
        }
        for i in range(9)
    ]
    summary = score(write_predictions(tmp_path / "p.jsonl", rows), "chartqa", make_plots=False)
    # "10" vs 10.4 is 3.8 % off (right), "12" is 15 % off, "abc" is not a number.
    assert summary["overall"]["relaxed_accuracy"] == pytest.approx(3 / 9)
    assert summary["groups"]["type"]["human_test"] == {"n": 6, "relaxed_accuracy": pytest.approx(2 / 6)}
    assert summary["groups"]["type"]["augmented_test"] == {"n": 3, "relaxed_accuracy": pytest.approx(1 / 3)}


def test_caption_groups_recompute_bleu_and_average_rouge(tmp_path):
    captions = ["a man rides a horse", "a dog runs in a park", "two cats sleep on a bed", "a woman cuts bread"]
    rows = []
    for i in range(12):
        ref = captions[i % 4]
        pred = ref if i % 3 == 0 else " ".join(ref.split()[:-1] + ["quickly"])
        rows.append(
            {
                "id": i,
                "prediction": pred,
                "answers": [ref, ref.replace("a ", "the ", 1)],
                "meta": {"source": "kitchen" if i < 5 else "street"},
            }
        )
    task = task_from_dict({"name": "caps", "metrics": ["bleu", "rouge_l"]})
    records = read_predictions(write_predictions(tmp_path / "p.jsonl", rows))
    summary, per_sample = score_records(records, task, tokenizer="simple")
    preds, refs = [r["prediction"] for r in rows], [r["answers"] for r in rows]
    b, _ = bleu(preds, refs, tokenizer="simple")
    assert [summary["overall"][f"bleu_{n}"] for n in range(1, 5)] == pytest.approx(b)
    kitchen = range(5)
    b_k, _ = bleu([preds[i] for i in kitchen], [refs[i] for i in kitchen], tokenizer="simple")
    assert summary["groups"]["source"]["kitchen"]["bleu_4"] == pytest.approx(b_k[3])
    _, rouge_scores = rouge_l(preds, refs, tokenizer="simple")
    assert summary["groups"]["source"]["street"]["rouge_l"] == pytest.approx(np.mean(rouge_scores[5:]))
    assert [r["scores"]["rouge_l"] for r in per_sample] == pytest.approx(rouge_scores)
    assert summary["tokenizer"] == "simple"


@pytest.mark.parametrize(
    "prediction, answers, category",
    [
        ("  ", ["42"], "empty"),
        ("I cannot determine that from the image.", ["blue"], "refused_or_unanswerable"),
        ("blue", ["unanswerable"] * 8 + ["blue"] * 2, "refused_or_unanswerable"),
        ("Unanswerable", ["red"] * 10, "refused_or_unanswerable"),
        ("東京", ["Tokyo"], "wrong_language"),
        ("a red motorbike", ["xe máy màu đỏ", "xe máy đỏ"], "wrong_language"),
        ("$1,300", ["$1,234"], "numeric_off"),
        ("The total is 45 dollars", ["42"], "numeric_off"),
        ("word2 word3", ["2"], "other"),  # digits inside words are not numbers, nor a partial match
        ("The total amount on the invoice is 1234 dollars and it is due soon", ["1234"], "too_long"),
        ("new york city", ["New York"], "partial_match"),
        ("cat", ["dog"], "other"),
    ],
)
def test_failure_categories(prediction, answers, category):
    assert categorize(prediction, answers) == category


def test_failure_counts_and_examples_in_summary(tmp_path):
    rows = [
        {"id": 0, "prediction": "", "answers": ["a"]},
        {"id": 1, "prediction": "b", "answers": ["b"]},
        {"id": 2, "prediction": "x", "answers": ["y"], "error": "timeout"},
        {"id": 3, "prediction": "17", "answers": ["18"]},
    ]
    summary = score(write_predictions(tmp_path / "p.jsonl", rows), "docvqa", make_plots=False)
    failures = summary["failures"]
    assert failures["wrong"] == 3 and failures["counts"] == {"empty": 2, "numeric_off": 1}
    assert failures["examples"]["empty"][1]["error"] == "timeout"
    assert summary["counts"]["errors"] == 1


def test_grouping_keys_skip_ids_and_free_text(tmp_path):
    rows = [
        {
            "id": i,
            "prediction": "a",
            "answers": ["a"],
            "meta": {"doc_id": f"d{i}", "kind": "x" if i % 2 else "y", "constant": "same", "box": {"x": 1}},
        }
        for i in range(6)
    ]
    records = read_predictions(write_predictions(tmp_path / "p.jsonl", rows))
    assert grouping_keys(records) == ["kind"]
    assert grouping_keys(records, declared=["constant"]) == ["constant", "kind"]


def test_unscored_rows_and_metric_only_scoring(tmp_path):
    rows = [{"id": 0, "prediction": "Paris.", "answers": ["paris"]}, {"id": 1, "prediction": "x", "answers": []}]
    summary = score(
        write_predictions(tmp_path / "p.jsonl", rows),
        metrics=["exact_match", "token_f1"],
        out_dir=tmp_path / "out",
        make_plots=False,
    )
    assert summary["task"] == "custom" and summary["overall"] == {"exact_match": 1.0, "token_f1": 1.0}
    assert summary["counts"] == {"predictions": 2, "scored": 1, "errors": 0, "without_answers": 1}
    assert (tmp_path / "out" / "scores.json").exists()


def test_plots_are_written(tmp_path):
    rows, _ = docvqa_rows(12)
    summary = score(write_predictions(tmp_path / "p.jsonl", rows), "docvqa")
    report = (tmp_path / "report.md").read_text()
    for name in ("latency.png", "by_doc_type.png", "failures.png"):
        assert (tmp_path / "plots" / name).stat().st_size > 1000
        assert f"plots/{name}" in report
    assert summary["files"]["report"].endswith("report.md")


def test_reads_the_manifest_that_vlmkit_infer_writes(tmp_path):
    rows = [{"id": i, "prediction": "a", "answers": ["a"], "latency_s": 1.0} for i in range(4)]
    path = write_predictions(tmp_path / "preds.jsonl", rows)
    (tmp_path / "preds.jsonl.manifest.json").write_text(
        json.dumps({"kind": "predictions", "model": "tiny-m", "elapsed_s": 2.0, "counts": {"predicted": 4}}),
        encoding="utf-8",
    )
    summary = score(path, "docvqa", make_plots=False)
    assert summary["throughput"]["samples_per_s"] == 2.0  # 4 samples in 2 s, not 4 / sum(latency_s)
    assert summary["throughput"]["source"] == "measured model time"
    assert "Model `tiny-m`" in (tmp_path / "report.md").read_text()
