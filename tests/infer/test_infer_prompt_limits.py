"""Prompt caps: an over-long prompt is a per-request error with its size and the limit, the rest still run."""

from __future__ import annotations

import pytest
from infer_helpers import request

from vlmkit.errors import VlmkitError
from vlmkit.infer import GenerationParams, load_engine

PARAMS = GenerationParams(max_new_tokens=3)


@pytest.fixture(scope="module")
def capped(tiny_model):
    return load_engine(str(tiny_model("qwen2_vl")), batch_size=4, max_prompt_tokens=64)


def test_a_prompt_over_the_token_cap_fails_alone_with_the_numbers(capped, images):
    long = request("long", "tell me more " * 20, images=[images[0]])
    results = capped.generate([request("a", "What is it?"), long, request("b", "Colour?", images=[images[1]])], PARAMS)
    assert results[0].ok and results[2].ok
    assert not results[1].ok and results[1].error_code == "context_length_exceeded"
    assert "tokens" in results[1].error and "over the limit of 64 tokens" in results[1].error


def test_a_huge_text_is_refused_by_characters_before_tokenizing(capped):
    huge = request("huge", "x" * 10_000_000)
    assert "10,000,000 characters, over the limit of 512 characters" in capped.request_problem(huge)
    result = capped.generate([huge], PARAMS)[0]
    assert result.error_code == "context_length_exceeded" and "characters" in result.error


def test_streaming_refuses_before_the_first_piece(capped):
    with pytest.raises(VlmkitError, match="over the limit of 64 tokens"):
        capped.stream(request("long", "tell me more " * 20), PARAMS)


def test_the_cap_never_exceeds_the_model_context(tiny_model):
    import json

    context = json.loads((tiny_model("qwen2_vl") / "config.json").read_text())["text_config"]["max_position_embeddings"]
    engine = load_engine(str(tiny_model("qwen2_vl")), max_prompt_tokens=10 * context)
    assert engine.prompt_limits.max_tokens == context
    assert engine.info()["prompt_limits"]["max_prompt_tokens"] == context
    default = load_engine(str(tiny_model("qwen2_vl")))
    assert default.prompt_limits.max_tokens == min(8192, context)


def test_a_bad_cap_is_a_clear_error(tiny_model):
    with pytest.raises(VlmkitError, match="max_prompt_tokens must be a positive integer"):
        load_engine(str(tiny_model("qwen2_vl")), max_prompt_tokens=0)


def _cli(*args: str):
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "vlmkit", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def _long_and_short(folder):
    import json

    from vlmkit.data.schema import Sample

    folder.mkdir(parents=True)
    samples = [
        Sample(id=sample_id, messages=[{"role": "user", "content": text}, {"role": "assistant", "content": "7"}])
        for sample_id, text in [("a", "What is 3+4?"), ("long", "tell me more " * 30), ("b", "And 5+2?")]
    ]
    rows = [dict(sample.to_json(), answers=["7"]) for sample in samples]
    (folder / "samples.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def test_infer_and_eval_take_max_prompt_tokens_as_a_per_sample_cap(tiny_model, tmp_path):
    import json

    model, data = str(tiny_model("qwen2_vl")), _long_and_short(tmp_path / "data")
    out = tmp_path / "pred.jsonl"
    run = _cli("infer", "--model", model, "--data", str(data), "--out", str(out), "--max-prompt-tokens", "64")
    assert run.returncode == 0, run.stderr[-2000:]
    rows = {row["id"]: row for row in map(json.loads, out.read_text().splitlines())}
    assert "error" not in rows["a"] and "error" not in rows["b"]
    assert "over the limit of 64 tokens" in rows["long"]["error"]
    assert "2 predicted" in run.stderr and "1 failed" in run.stderr

    evaluated = _cli(
        "eval", "--model", model, "--task", "docvqa", "--data", str(data), "--out", str(tmp_path / "eval"),
        "--max-prompt-tokens", "64", "--no-plots", "--max-new-tokens", "2",
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    predictions = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    failed = {row["id"]: row["error"] for row in predictions if row.get("error")}
    assert list(failed) == ["long"] and "over the limit of 64 tokens" in failed["long"]


def test_max_prompt_tokens_is_for_a_model_run_here():
    run = _cli("infer", "--model", "m", "--engine", "openai", "--max-prompt-tokens", "64", "-q", "Hi?")
    assert run.returncode == 2 and "--max-prompt-tokens" in run.stderr and "Traceback" not in run.stderr
