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
