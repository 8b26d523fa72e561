"""The evaluation runner with plain Python predict functions: files, resume (including a real kill -9 of a
subprocess mid-run), engine errors, manifest guards and submission files."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from eval_helpers import item_number, make_sample, rule_predict, write_dataset

from vlmkit.errors import VlmkitError
from vlmkit.eval import evaluate
from vlmkit.eval.tasks import get_task, task_from_dict

EM_TASK = task_from_dict({"name": "em", "metrics": ["exact_match"], "prompt": "{question} Short answer."})


def read_lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_run_writes_everything(tmp_path):
    samples = [make_sample(i) for i in range(1, 25)]
    seen = []
    result = evaluate(
        rule_predict,
        EM_TASK,
        samples,
        tmp_path / "run",
        batch_size=5,
        manifest={"model": "rule-v1"},
        progress=lambda done, total: seen.append((done, total)),
    )
    assert result.predicted == result.total == 24
    rows = read_lines(tmp_path / "run" / "predictions.jsonl")
    assert [r["id"] for r in rows] == [s.id for s in samples]
    assert set(rows[0]) == {"id", "question", "prediction", "answers", "meta", "latency_s"}
    assert rows[0]["question"] == "What is the value of item 1?" and rows[0]["answers"] == ["7"]
    right = sum(1 for i in range(1, 25) if i % 3)
    assert result.summary["overall"]["exact_match"] == pytest.approx(right / 24)
    assert result.summary["groups"]["kind"]["odd"]["n"] == 12
    assert seen[0] == (0, 24) and seen[-1] == (24, 24) and len(seen) == 6  # the start, then one per batch of 5
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["model"] == "rule-v1"
    assert manifest["task"]["prompt"] == "{question} Short answer." and manifest["data_hash"].startswith("sha256:")
    assert manifest["packages"]["vlmkit"] and manifest["batch_size"] == 5
    timing = result.summary["timing"]
    assert 0 <= timing["outside_model_share"] <= 1 and timing["predicted"] == 24
    for name in ("scores.json", "sample_scores.jsonl", "report.md", "timing.jsonl"):
        assert (tmp_path / "run" / name).exists()


def test_prompt_reaches_the_model(tmp_path):
    got = []

    def predict(requests):
        got.extend(requests)
        return ["x"] * len(requests)

    evaluate(predict, "docvqa", [make_sample(1)], tmp_path / "r", make_plots=False)
    (request,) = got
    assert request.messages[-1]["content"][-1]["text"].endswith("Answer the question using a single word or phrase.")
    assert request.generation.max_new_tokens == 32 and request.generation.greedy


def test_interrupted_run_resumes_without_duplicates(tmp_path):
    samples = [make_sample(i) for i in range(1, 21)]
    calls = []

    def flaky(requests):
        calls.append(len(requests))
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C during the third batch
        return rule_predict(requests)

    with pytest.raises(KeyboardInterrupt):
        evaluate(flaky, EM_TASK, samples, tmp_path / "run", batch_size=4)
    assert len(read_lines(tmp_path / "run" / "predictions.jsonl")) == 8
    result = evaluate(rule_predict, EM_TASK, samples, tmp_path / "run", batch_size=4)
    assert result.predicted == 12
    ids = [r["id"] for r in read_lines(tmp_path / "run" / "predictions.jsonl")]
    assert sorted(ids) == sorted(s.id for s in samples) and len(ids) == len(set(ids))
    again = evaluate(rule_predict, EM_TASK, samples, tmp_path / "run", batch_size=4)
    assert again.predicted == 0 and again.summary["overall"] == result.summary["overall"]


def test_torn_last_line_is_dropped_and_redone(tmp_path):
    samples = [make_sample(i) for i in range(1, 7)]
    evaluate(rule_predict, EM_TASK, samples[:3] + samples[3:], tmp_path / "run", make_plots=False)
    path = tmp_path / "run" / "predictions.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:4]) + lines[4][:25], encoding="utf-8")  # crash in the middle of line 5
    result = evaluate(rule_predict, EM_TASK, samples, tmp_path / "run", make_plots=False)
    assert result.predicted == 2
    rows = read_lines(path)
    assert [r["id"] for r in rows] == [s.id for s in samples]


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    from vlmkit.eval import evaluate
    from vlmkit.eval.tasks import task_from_dict

    def slow(requests):
        time.sleep(0.03)
        out = []
        for r in requests:
            i = int(r.question.rsplit(" ", 1)[-1].rstrip("?"))
            out.append(str(7 * i) if i % 3 else str(7 * i + 1))
        return out

    task = task_from_dict({"name": "em", "metrics": ["exact_match"]})
    result = evaluate(slow, task, sys.argv[1], sys.argv[2], batch_size=3, make_plots=False)
    print("predicted", result.predicted)
""")


def test_kill_9_mid_run_then_resume(tmp_path):
    samples = [make_sample(i) for i in range(1, 91)]
    data = write_dataset(tmp_path / "data", samples)
    out = tmp_path / "run"
    script = tmp_path / "run_eval.py"
    script.write_text(KILL_SCRIPT, encoding="utf-8")
    predictions = out / "predictions.jsonl"
    counts = []
    for target in (12, 45):  # kill twice, at two different points
        proc = subprocess.Popen(
            [sys.executable, str(script), str(data), str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if predictions.exists() and predictions.read_bytes().count(b"\n") >= target:
                break
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        counts.append(predictions.read_bytes().count(b"\n"))
    assert 12 <= counts[0] < counts[1] < len(samples)
    done = subprocess.run(
        [sys.executable, str(script), str(data), str(out)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    rows = read_lines(predictions)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == len(samples)  # no duplicate, no loss
    assert set(ids) == {s.id for s in samples}
    for row in rows:  # and nothing half-written or mixed up
        i = item_number(row["question"])
        assert row["prediction"] == (str(7 * i) if i % 3 else str(7 * i + 1))
    scores = json.loads((out / "scores.json").read_text())
    assert scores["overall"]["exact_match"] == pytest.approx(60 / 90)


def test_a_failing_sample_does_not_sink_its_batch(tmp_path):
    samples = [make_sample(i) for i in range(1, 9)]

    def picky(requests):
        if any(item_number(r.question) == 5 for r in requests):
            raise RuntimeError("cannot decode image")
        return rule_predict(requests)

    result = evaluate(picky, EM_TASK, samples, tmp_path / "run", batch_size=4, make_plots=False)
    rows = {r["id"]: r for r in read_lines(tmp_path / "run" / "predictions.jsonl")}
    assert rows["s0005"]["error"] == "RuntimeError: cannot decode image" and rows["s0005"]["prediction"] == ""
    assert "error" not in rows["s0007"] and rows["s0007"]["prediction"] == "49"
    assert result.summary["counts"]["errors"] == 1
    assert result.summary["failures"]["counts"]["empty"] >= 1
    # Errors are final unless asked: --retry-errors predicts that sample again, without a duplicate line.
    assert evaluate(rule_predict, EM_TASK, samples, tmp_path / "run", make_plots=False).predicted == 0
    fixed = evaluate(rule_predict, EM_TASK, samples, tmp_path / "run", retry_errors=True, make_plots=False)
    assert fixed.predicted == 1
    rows = read_lines(tmp_path / "run" / "predictions.jsonl")
    assert len(rows) == 8 and not any("error" in r for r in rows)


def test_mapping_outputs_and_bad_outputs(tmp_path):
    def engine_like(requests):
        if len(requests) > 1:
            return [{"prediction": "7"}]  # wrong length: the batch is redone one by one
        i = item_number(requests[0].question)
        if i == 2:
            return [42]
        return [{"prediction": str(7 * i), "latency_s": 0.25}]

    samples = [make_sample(i) for i in range(1, 4)]
    evaluate(engine_like, EM_TASK, samples, tmp_path / "run", batch_size=3, make_plots=False)
    rows = read_lines(tmp_path / "run" / "predictions.jsonl")
    assert rows[0]["prediction"] == "7" and rows[0]["latency_s"] == 0.25
    assert rows[1]["error"].startswith("engine returned int")


def test_resume_refuses_a_different_run(tmp_path):
    samples = [make_sample(i) for i in range(1, 5)]
    evaluate(rule_predict, EM_TASK, samples, tmp_path / "run", manifest={"model": "a"}, make_plots=False)
    with pytest.raises(VlmkitError, match="different model"):
        evaluate(rule_predict, EM_TASK, samples, tmp_path / "run", manifest={"model": "b"}, make_plots=False)
    other_prompt = task_from_dict({"name": "em", "metrics": ["exact_match"], "prompt": "{question} Be brief."})
    with pytest.raises(VlmkitError, match="different task.prompt"):
        evaluate(rule_predict, other_prompt, samples, tmp_path / "run", manifest={"model": "a"}, make_plots=False)
    with pytest.raises(VlmkitError, match="different task.name"):
        evaluate(rule_predict, "docvqa", samples, tmp_path / "run", manifest={"model": "a"}, make_plots=False)
    with pytest.raises(VlmkitError, match="different data_hash"):
        evaluate(rule_predict, EM_TASK, samples[:2], tmp_path / "run", manifest={"model": "a"}, make_plots=False)
    fresh = evaluate(
        rule_predict, EM_TASK, samples[:2], tmp_path / "run", manifest={"model": "a"}, overwrite=True, make_plots=False
    )
    assert fresh.predicted == 2 and len(read_lines(tmp_path / "run" / "predictions.jsonl")) == 2


def test_slice_and_dataset_folder(tmp_path):
    data = write_dataset(tmp_path / "data", [make_sample(i) for i in range(1, 11)])
    result = evaluate(rule_predict, EM_TASK, data, tmp_path / "run", slice="2:5", make_plots=False)
    assert [r["id"] for r in read_lines(tmp_path / "run" / "predictions.jsonl")] == ["s0003", "s0004", "s0005"]
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["slice"] == "2:5"
    assert result.total == 3
    with pytest.raises(VlmkitError, match="START:STOP"):
        evaluate(rule_predict, EM_TASK, data, tmp_path / "other", slice="2-5")
    with pytest.raises(VlmkitError, match="out of range: the dataset has 10 samples"):
        evaluate(rule_predict, EM_TASK, data, tmp_path / "other", slice="50:")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("0:500", "--slice 0:500 is out of range: the dataset has 10 samples, so STOP can be at most 10"),
        ("10:", "--slice 10: is out of range: the dataset has 10 samples (indices 0 to 9)"),
        ("4:4", "--slice 4:4 selects nothing"),
        ("-3:", "--slice must look like START:STOP"),
    ],
)
def test_eval_and_infer_share_one_slice_rule(tmp_path, spec, message):
    """A slice past the end is an error naming the dataset size in both verbs, never a silent clip."""
    from vlmkit.infer.predict import parse_slice as infer_slice

    data = write_dataset(tmp_path / "data", [make_sample(i) for i in range(1, 11)])
    with pytest.raises(VlmkitError) as eval_error:
        evaluate(rule_predict, EM_TASK, data, tmp_path / "run", slice=spec, make_plots=False)
    with pytest.raises(VlmkitError) as infer_error:
        infer_slice(spec, 10)
    assert str(eval_error.value) == str(infer_error.value) and str(eval_error.value).startswith(message)
    assert not (tmp_path / "run" / "predictions.jsonl").exists()


def test_vizwiz_submission_for_a_test_split(tmp_path):
    samples = [make_sample(i, answers=[], meta={"image": f"VizWiz_test_{i:08d}.jpg"}) for i in range(1, 4)]
    answers = {1: "Unanswerable", 2: "Two dogs.", 3: "  red "}
    predict = lambda reqs: [answers[item_number(r.question)] for r in reqs]  # noqa: E731
    result = evaluate(predict, "vizwiz", samples, tmp_path / "run", submission=tmp_path / "sub.json")
    assert result.summary is None and not (tmp_path / "run" / "scores.json").exists()
    assert json.loads((tmp_path / "sub.json").read_text()) == [
        {"image": "VizWiz_test_00000001.jpg", "answer": "unanswerable"},
        {"image": "VizWiz_test_00000002.jpg", "answer": "2 dogs"},
        {"image": "VizWiz_test_00000003.jpg", "answer": "red"},
    ]


def test_docvqa_submission_question_ids(tmp_path):
    samples = [make_sample(i, answers=[]) for i in (57, 58)]
    evaluate(
        lambda reqs: [" $12 "] * len(reqs),
        get_task("docvqa"),
        samples,
        tmp_path / "run",
        submission=tmp_path / "docvqa.json",
    )
    assert json.loads((tmp_path / "docvqa.json").read_text()) == [
        {"questionId": 57, "answer": "$12"},
        {"questionId": 58, "answer": "$12"},
    ]


def test_resume_with_other_quantization_is_refused(tmp_path):
    """A run made with 4-bit weights is not continued in full precision (nor the other way round)."""
    samples = [make_sample(i) for i in range(1, 5)]
    evaluate(
        rule_predict,
        EM_TASK,
        samples,
        tmp_path / "run",
        make_plots=False,
        manifest={"model": "m", "engine": {"quantization": "4bit"}},
    )
    with pytest.raises(VlmkitError, match="different engine.quantization"):
        evaluate(
            rule_predict,
            EM_TASK,
            samples,
            tmp_path / "run",
            make_plots=False,
            manifest={"model": "m", "engine": {"quantization": None}},
        )
    resumed = evaluate(
        rule_predict,
        EM_TASK,
        samples,
        tmp_path / "run",
        make_plots=False,
        manifest={"model": "m", "engine": {"quantization": "4bit"}},
    )
    assert resumed.predicted == 0 and resumed.total == 4  # same settings: resumed, nothing to redo


def test_npy_submission_holds_the_answers_in_dataset_order(tmp_path):
    """Seed 002's submission.npy: the post-processed answers as a numpy array, in the dataset's order."""
    import numpy as np

    samples = [make_sample(i, answers=[]) for i in (3, 1, 6, 2, 5, 4)]
    answers = {i: f" Answer {i}. " for i in range(1, 7)}
    predict = lambda reqs: [answers[item_number(r.question)] for r in reqs]  # noqa: E731
    evaluate(
        predict,
        "vizwiz",
        samples,
        tmp_path / "run",
        batch_size=4,
        submission=tmp_path / "submission.npy",
        make_plots=False,
    )
    saved = np.load(tmp_path / "submission.npy")
    assert saved.tolist() == [f"answer {i}" for i in (3, 1, 6, 2, 5, 4)]  # EvalAI-processed, as for the JSON


def test_tqdm_progress_counts_a_resumed_run_from_where_it_stands(tmp_path):
    """The progress callback on a real tqdm bar: a fresh run counts from 0; a resumed run starts the bar at
    the samples already predicted (so the rate covers only this run's work), then adds each batch."""
    import io

    from tqdm import tqdm

    from vlmkit.eval.runner import tqdm_progress

    samples = [make_sample(i) for i in range(1, 11)]

    def run(batch_size):
        states = []
        with tqdm(total=0, file=io.StringIO()) as bar:
            progress = tqdm_progress(bar)

            def spy(done, total):
                progress(done, total)
                states.append((bar.initial, bar.n, bar.total))

            evaluate(
                rule_predict, EM_TASK, samples, tmp_path / "run", batch_size=batch_size, make_plots=False, progress=spy
            )
        return states

    assert run(3) == [(0, 0, 10), (0, 3, 10), (0, 6, 10), (0, 9, 10), (0, 10, 10)]
    predictions = tmp_path / "run" / "predictions.jsonl"
    predictions.write_text("".join(predictions.read_text().splitlines(keepends=True)[:4]))  # as after a kill
    assert run(3) == [(4, 4, 10), (4, 7, 10), (4, 10, 10)]
