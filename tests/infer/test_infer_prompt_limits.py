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
