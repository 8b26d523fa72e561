"""Bad prediction files: every problem is a DataError naming the file, the line and the field; the CLI
prints one line and exits 2."""

import os
import subprocess
import sys

import pytest
from eval_helpers import write_predictions

from vlmkit.errors import DataError
from vlmkit.eval.predictions import read_predictions

GOOD = '{"id": "a", "prediction": "x", "answers": ["x"]}'


@pytest.mark.parametrize(
    "line, field, reason",
    [
        ('{"prediction": "x", "answers": ["x"]}', "id", "missing field 'id'"),
        ('{"id": "b", "answers": ["x"]}', "prediction", "missing field 'prediction'"),
        ('{"id": "b", "prediction": "x"}', "answers", "missing field 'answers'"),
        ('{"id": "b", "prediction": NaN, "answers": ["x"]}', "prediction", "got NaN"),
        ('{"id": "b", "prediction": 3, "answers": ["x"]}', "prediction", "got int"),
        ('{"id": "b", "prediction": null, "answers": ["x"]}', "prediction", "got null"),
        ('{"id": "b", "prediction": "x", "answers": "x", "latency_s": NaN}', "latency_s", "NaN"),
        ('{"id": "b", "prediction": "x", "answers": ["x"], "latency_s": Infinity}', "latency_s", "finite"),
        ('{"id": "b", "prediction": "x", "answers": ["x"], "latency_s": -1}', "latency_s", "negative"),
        ('{"id": "b", "prediction": "x", "answers": ["x"], "latency_s": "fast"}', "latency_s", "got str"),
        ('{"id": "b", "prediction": "x", "answers": [1.5]}', "answers[0]", "got float"),
        ('{"id": "b", "prediction": "x", "answers": {"a": 1}}', "answers", "got dict"),
        ('{"id": true, "prediction": "x", "answers": ["x"]}', "id", "got bool"),
        ('{"id": " ", "prediction": "x", "answers": ["x"]}', "id", "must not be empty"),
        ('{"id": "b", "prediction": "x", "answers": ["x"], "meta": []}', "meta", "must be an object"),
        ('{"id": "b", "prediction": "x", "answers": ["x"], "meta": {"w": NaN}}', "meta.w", "NaN"),
        ('{"id": "b", "prediction": "x", "answers": ["x"], "error": 5}', "error", "got int"),
        ('{"id": "a", "prediction": "y", "answers": ["x"]}', "id", "duplicate id 'a' (first seen on line 1)"),
    ],
)
def test_bad_line_is_named(tmp_path, line, field, reason):
    path = write_predictions(tmp_path / "p.jsonl", [GOOD, line])
    with pytest.raises(DataError) as err:
        read_predictions(path)
    message = str(err.value)
    assert str(path) in message and "line 2" in message and f"field '{field}'" in message and reason in message


def test_malformed_json_and_non_objects(tmp_path):
    path = write_predictions(tmp_path / "p.jsonl", [GOOD, '{"id": "b", "prediction": '])
    with pytest.raises(DataError, match="line 2: malformed JSON"):
        read_predictions(path)
    path = write_predictions(tmp_path / "q.jsonl", [GOOD, '["b", "x"]'])
    with pytest.raises(DataError, match="line 2: expected a JSON object, got list"):
        read_predictions(path)
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(DataError, match="no predictions"):
        read_predictions(tmp_path / "empty.jsonl")
    with pytest.raises(DataError, match="file not found"):
        read_predictions(tmp_path / "missing.jsonl")


def test_lenient_parts_any_tool_may_write(tmp_path):
    path = write_predictions(
        tmp_path / "p.jsonl",
        [
            '{"id": 7, "prediction": "x", "answers": "x", "extra": {"ignored": true}}',
            '{"id": "e", "prediction": null, "error": "CUDA OOM", "answers": ["x"]}',
        ],
    )
    first, second = read_predictions(path)
    assert first.id == "7" and first.answers == ["x"] and first.question == "" and first.meta == {}
    assert second.prediction == "" and second.error == "CUDA OOM"


def run_cli(*args):
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "vlmkit", *args], capture_output=True, text=True, env=env, timeout=120)


def test_cli_errors_are_one_line_with_exit_2(tmp_path):
    path = write_predictions(tmp_path / "p.jsonl", [GOOD, '{"id": "a", "prediction": NaN, "answers": ["x"]}'])
    out = run_cli("score", str(path), "--task", "docvqa")
    assert out.returncode == 2 and "line 2" in out.stderr and "Traceback" not in out.stderr
    out = run_cli("score", str(tmp_path / "p.jsonl"), "--task", "doc-vqa")
    assert out.returncode == 2 and "unknown task 'doc-vqa'" in out.stderr and "docvqa" in out.stderr
    out = run_cli("score", str(path))
    assert out.returncode == 2 and "--task" in out.stderr
