"""`vlmkit score` and `vlmkit eval` from the command line."""

import json
import os
import subprocess
import sys

from eval_helpers import make_sample, write_dataset, write_predictions

ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}


def run(*args):
    return subprocess.run([sys.executable, "-m", "vlmkit", *args], capture_output=True, text=True, env=ENV, timeout=120)


def test_score_cli_writes_report_and_prints_scores(tmp_path):
    rows = [
        {
            "id": f"docvqa-{i}",
            "prediction": "12" if i % 2 else "99",
            "answers": ["12"],
            "meta": {"doc_type": "form" if i < 3 else "table"},
            "latency_s": 0.2,
        }
        for i in range(6)
    ]
    path = write_predictions(tmp_path / "p.jsonl", rows)
    out = run(
        "score",
        str(path),
        "--task",
        "docvqa",
        "--out",
        str(tmp_path / "o"),
        "--no-plots",
        "--submission",
        str(tmp_path / "sub.json"),
    )
    assert out.returncode == 0, out.stderr
    assert "anls" in out.stdout and "50.00" in out.stdout and "by doc_type" in out.stdout
    scores = json.loads((tmp_path / "o" / "scores.json").read_text())
    assert scores["overall"]["anls"] == 0.5 and not (tmp_path / "o" / "plots").exists()
    assert json.loads((tmp_path / "sub.json").read_text())[1] == {"questionId": 1, "answer": "12"}
    out = run("score", str(path), "--metric", "exact_match", "--metric", "anls", "--json", "--out", str(tmp_path / "j"))
    summary = json.loads(out.stdout)
    assert summary["overall"] == {"exact_match": 0.5, "anls": 0.5}


def test_eval_cli_checks_its_input_before_loading_a_model(tmp_path):
    out = run(
        "eval", "--model", "m", "--task", "docvqa", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")
    )
    assert out.returncode == 2 and "samples.jsonl" in out.stderr and "Traceback" not in out.stderr
    data = write_dataset(tmp_path / "data", [make_sample(1)])
    out = run(
        "eval", "--model", "m", "--task", "docvqa", "--data", str(data), "--out", str(tmp_path / "r"), "--slice", "1-2"
    )
    assert out.returncode == 2 and "--slice must look like START:STOP" in out.stderr
    out = run("eval", "--model", "m", "--task", "nope", "--data", str(data), "--out", str(tmp_path / "r"))
    assert out.returncode == 2 and "unknown task 'nope'" in out.stderr
    out = run(
        "eval",
        "--model",
        "m",
        "--task",
        "docvqa",
        "--task",
        "chartqa",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "r"),
    )
    assert out.returncode == 2 and "2 --task but 1 --data" in out.stderr
    out = run(
        "eval",
        "--model",
        "m",
        "--task",
        "docvqa",
        "--data",
        str(data),
        "--task",
        "docvqa",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "r"),
    )
    assert out.returncode == 2 and "task docvqa is given twice" in out.stderr


def test_help_texts():
    for verb in ("eval", "score", "compare"):
        out = run(verb, "--help")
        assert out.returncode == 0 and "--help" in out.stdout
    assert "--slice" in run("eval", "--help").stdout and "--resamples" in run("compare", "--help").stdout


def test_vqa_accuracy_on_single_reference_data_warns_in_output_and_report(tmp_path):
    """textvqa on a LLaVA-style import (one answer each): exactly right answers score 0 by the official formula;
    the run says so and names the metric to use instead. Ten-answer data gets no warning."""
    rows = [{"id": f"q{i}", "prediction": "red", "answers": ["red"]} for i in range(4)]
    out = run("score", str(write_predictions(tmp_path / "p.jsonl", rows)), "--task", "textvqa", "--no-plots")
    assert out.returncode == 0, out.stderr
    warning = [line for line in out.stderr.splitlines() if line.startswith("warning: vqa_accuracy")]
    assert len(warning) == 1 and "4 of 4 scored samples have fewer than 10 reference answers" in warning[0]
    assert "--metric exact_match" in warning[0] and "vqa_accuracy_lmms" in warning[0]
    scores = json.loads((tmp_path / "scores.json").read_text(encoding="utf-8"))
    assert scores["overall"]["vqa_accuracy"] == 0.0 and scores["warnings"] == [warning[0].removeprefix("warning: ")]
    assert "> **Warning:** vqa_accuracy: 4 of 4" in (tmp_path / "report.md").read_text(encoding="utf-8")

    full = [{"id": f"q{i}", "prediction": "red", "answers": ["red"] * 10} for i in range(4)]
    out = run("score", str(write_predictions(tmp_path / "f" / "p.jsonl", full)), "--task", "textvqa", "--no-plots")
    assert out.returncode == 0 and "warning" not in out.stderr
    assert json.loads((tmp_path / "f" / "scores.json").read_text(encoding="utf-8"))["warnings"] == []


def test_group_by_key_in_no_sample_warns(tmp_path):
    task = tmp_path / "task.yaml"
    task.write_text("name: custom\nmetrics: [exact_match]\ngroup_by: [difficulty]\n", encoding="utf-8")
    rows = [{"id": f"q{i}", "prediction": "a", "answers": ["a"], "meta": {"level": i % 2}} for i in range(4)]
    path = write_predictions(tmp_path / "p.jsonl", rows)
    out = run("score", str(path), "--task", str(task), "--no-plots")
    assert out.returncode == 0, out.stderr
    assert "warning: task custom: group_by key 'difficulty' is in no sample's meta" in out.stderr
    assert "(meta keys found: level)" in out.stderr
    out = run("score", str(path), "--task", str(task), "--group-by", "level", "--no-plots", "--json")
    assert out.returncode == 0 and "warning" not in out.stderr and json.loads(out.stdout)["warnings"] == []
    out = run("score", str(path), "--task", "docvqa", "--no-plots")  # built-in alternatives: no warning
    assert out.returncode == 0 and "warning" not in out.stderr


def test_engine_error_count_names_the_retry_flag(tmp_path):
    rows = [{"id": "q0", "prediction": "a", "answers": ["a"]}, {"id": "q1", "prediction": "", "answers": ["b"]}]
    rows[1]["error"] = "CUDA out of memory"
    out = run("score", str(write_predictions(tmp_path / "p.jsonl", rows)), "--task", "vitextvqa", "--no-plots")
    assert out.returncode == 0, out.stderr
    assert "1 engine errors (--retry-errors predicts them again)" in out.stdout
    assert "`--retry-errors`" in (tmp_path / "report.md").read_text(encoding="utf-8")
