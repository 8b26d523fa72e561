"""End to end on tiny random checkpoints: `vlmkit eval` through the real inference engine (resumable), then
`compare` on two runs (a "base" and another checkpoint), as a user would after a LoRA ablation."""

import json
import os
import subprocess
import sys

import pytest
from eval_helpers import write_dataset

from vlmkit.data.schema import Sample
from vlmkit.eval import compare, evaluate
from vlmkit.eval.engine import load_predict_fn
from vlmkit.infer import load_engine

pytestmark = pytest.mark.slow
ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def image_dataset(tmp_path_factory):
    from synthetic_media import make_image

    root = tmp_path_factory.mktemp("docdata")
    (root / "media").mkdir()
    samples = []
    for i in range(8):
        make_image(seed=i).save(root / "media" / f"{i}.png")
        samples.append(
            Sample(
                id=f"docvqa-{100 + i}",
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "image": f"media/{i}.png"},
                            {"type": "text", "text": f"What is in box {i}?"},
                        ],
                    }
                ],
                answers=[f"box {i}"],
                meta={"doc_type": "form" if i % 2 else "table"},
            )
        )
    return write_dataset(root, samples)


def test_eval_cli_then_compare_two_tiny_checkpoints(tiny_model, image_dataset, tmp_path):
    from vlmkit.models.tiny import build_tiny

    base_model = tiny_model("qwen2_vl")
    args = [
        sys.executable,
        "-m",
        "vlmkit",
        "eval",
        "--model",
        str(base_model),
        "--task",
        "docvqa",
        "--data",
        str(image_dataset),
        "--out",
        str(tmp_path / "base"),
        "--batch-size",
        "4",
        "--max-new-tokens",
        "4",
        "--no-plots",
    ]
    out = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "8 new predictions" in out.stdout and "anls" in out.stdout

    manifest = json.loads((tmp_path / "base" / "manifest.json").read_text())
    assert manifest["model"] == str(base_model) and "max_pixels" in manifest["pixels"]
    assert manifest["engine"]["family"] == "qwen2_vl" and manifest["task"]["generation"]["max_new_tokens"] == 4
    rows = [json.loads(x) for x in (tmp_path / "base" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(isinstance(r["prediction"], str) and r["latency_s"] > 0 for r in rows)

    other = build_tiny("qwen2_vl", tmp_path / "other-checkpoint", seed=1)
    predict, facts = load_predict_fn(str(other), batch_size=4)
    result = evaluate(
        predict, "docvqa", image_dataset, tmp_path / "other", batch_size=4, manifest=facts, make_plots=False
    )
    assert result.predicted == 8 and result.summary["throughput"]["source"] == "measured model time"
    engine = load_engine(str(other), batch_size=4)  # an engine object works in place of a predict function
    again = evaluate(engine, "docvqa", image_dataset, tmp_path / "other", batch_size=4, make_plots=False)
    assert again.predicted == 0  # same model, prompt and data: resumed, nothing to redo

    table = compare(
        [tmp_path / "base", tmp_path / "other"], names=["base", "seed-1"], out_dir=tmp_path / "cmp", resamples=200
    )
    assert [r["name"] for r in table["runs"]] == ["base", "seed-1"]
    assert "anls" in table["runs"][1]["deltas"] and table["runs"][1]["common"] == 8
    assert "| seed-1 |" in (tmp_path / "cmp" / "compare.md").read_text()
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 5000


def test_eval_cli_media_and_beam_settings_reach_the_engine_and_guard_resume(tiny_model, image_dataset, tmp_path):
    """--max-pixels/--min-pixels and --num-beams reach the engine and the task, are recorded in manifest.json,
    and a resume with other pixel settings is refused rather than mixing two resolutions in one run."""
    model = tiny_model("qwen2_vl")
    base = [
        sys.executable,
        "-m",
        "vlmkit",
        "eval",
        "--model",
        str(model),
        "--task",
        "docvqa",
        "--data",
        str(image_dataset),
        "--out",
        str(tmp_path / "run"),
        "--slice",
        "0:2",
        "--max-new-tokens",
        "3",
        "--no-plots",
    ]
    out = subprocess.run(
        [*base, "--min-pixels", "3136", "--max-pixels", "3136", "--num-beams", "2", "--no-progress"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "eval docvqa" not in out.stderr and "sample/s" not in out.stderr  # --no-progress: no bar
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["pixels"]["min_pixels"] == manifest["pixels"]["max_pixels"] == 3136
    assert manifest["task"]["generation"]["num_beams"] == 2
    out = subprocess.run(
        [*base, "--max-pixels", "12544", "--num-beams", "2"], capture_output=True, text=True, env=ENV, timeout=600
    )
    assert out.returncode == 2 and "different pixels" in out.stderr and "Traceback" not in out.stderr


def test_eval_cli_several_tasks_with_one_model_load(tiny_model, image_dataset, tmp_path):
    """--task/--data pairs: one run folder per task under --out (each its own resumable run), plus summary.md
    and summary.json with each task's primary score as its scores.json has it."""
    out = tmp_path / "suite"
    args = [
        sys.executable,
        "-m",
        "vlmkit",
        "eval",
        "--model",
        str(tiny_model("qwen2_vl")),
        "--out",
        str(out),
        "--task",
        "docvqa",
        "--data",
        str(image_dataset),
        "--task",
        "chartqa",
        "--data",
        str(image_dataset),
        "--slice",
        "0:3",
        "--max-new-tokens",
        "3",
        "--no-plots",
    ]
    result = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert [row["task"] for row in summary["tasks"]] == ["docvqa", "chartqa"]
    for row in summary["tasks"]:
        scores = json.loads((out / row["task"] / "scores.json").read_text())
        assert row["metric"] == scores["primary"] and row["score"] == scores["overall"][scores["primary"]]
        assert (
            row["n"] == 3
            and json.loads((out / row["task"] / "manifest.json").read_text())["task"]["name"] == row["task"]
        )
    assert "| chartqa | 3 | relaxed_accuracy |" in (out / "summary.md").read_text()
    again = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=600)
    assert again.returncode == 0 and again.stdout.count("0 new predictions, 3 in") == 2  # both resumed
