"""The HF engine on every family's tiny checkpoint: batching, streaming, decoding modes, per-request errors."""

from __future__ import annotations

import pytest
from families import FAMILIES
from infer_helpers import mixed_batch, request

from vlmkit.errors import VlmkitError
from vlmkit.infer import Engine, GenerationParams

GREEDY = GenerationParams(max_new_tokens=16)


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_greedy_equals_one_at_a_time(engine_for, images, family):
    engine = engine_for(family)
    samples = mixed_batch(images)
    batched = engine.generate(samples, GREEDY)  # one batch of 6 with very different prompt lengths
    alone = [engine.generate([s], GREEDY)[0] for s in samples]
    assert [r.error for r in batched] == [None] * len(samples)
    assert [r.text for r in batched] == [r.text for r in alone]
    assert [r.completion_tokens for r in batched] == [r.completion_tokens for r in alone]
    assert [r.prompt_tokens for r in batched] == [r.prompt_tokens for r in alone]
    assert any(r.text for r in batched)
    for result in batched:
        assert result.finish_reason in ("stop", "length")
        assert 0 < result.completion_tokens <= GREEDY.max_new_tokens
        assert (result.finish_reason == "length") <= (result.completion_tokens == GREEDY.max_new_tokens)


@pytest.mark.parametrize("family", ["qwen2_vl", "llava"])
def test_small_batches_and_bucketing_keep_request_order(engine_for, images, family):
    samples = mixed_batch(images)
    reference = [r.text for r in engine_for(family).generate(samples, GREEDY)]
    in_pairs = engine_for(family, batch_size=2).generate(samples, GREEDY)
    assert [r.text for r in in_pairs] == reference
    reordered = engine_for(family, batch_size=2).generate(samples[::-1], GREEDY)
    assert [r.text for r in reordered] == reference[::-1]


@pytest.mark.parametrize("family", FAMILIES)
def test_stream_adds_up_to_the_generated_text(engine_for, images, family):
    engine = engine_for(family)
    sample = request("s", "What is shown here?", images=[images[2]])
    expected = engine.generate([sample], GREEDY)[0]
    stream = engine.stream(sample, GREEDY)
    pieces = list(stream)
    assert "".join(pieces) == expected.text
    assert stream.result.text == expected.text
    assert stream.result.completion_tokens == expected.completion_tokens
    assert stream.result.finish_reason == expected.finish_reason


@pytest.mark.parametrize("family", FAMILIES)
def test_stop_strings_end_the_answer_in_batch_and_stream(engine_for, images, family):
    engine = engine_for(family)
    sample = request("s", "What is in the picture?", images=[images[0]])
    full = engine.generate([sample], GenerationParams(max_new_tokens=24))[0].text
    if len(full) < 6:
        pytest.skip(f"{family}'s tiny answer is too short to cut: {full!r}")
    stop = full[3:6]
    params = GenerationParams(max_new_tokens=24, stop=[stop])
    cut = engine.generate([sample], params)[0]
    assert cut.text == full[: full.index(stop)].strip()
    assert cut.finish_reason == "stop"
    assert cut.completion_tokens < engine.generate([sample], GenerationParams(max_new_tokens=24))[0].completion_tokens
    assert engine.stream(sample, params).text() == cut.text


@pytest.mark.parametrize("family", FAMILIES)
def test_beam_search_and_sampling_run(engine_for, images, family):
    engine = engine_for(family)
    samples = [request("a", "What is this?", images=[images[0]]), request("b", "Colour?", images=[images[3]])]
    beams = engine.generate(samples, GenerationParams(max_new_tokens=8, num_beams=3))
    assert all(r.ok and r.completion_tokens > 0 for r in beams)
    assert engine.stream(samples[0], GenerationParams(max_new_tokens=8, num_beams=3)).text() == beams[0].text

    hot = dict(max_new_tokens=12, do_sample=True, temperature=1.5, top_p=0.95, top_k=50, repetition_penalty=1.2)
    first = engine.generate(samples, GenerationParams(**hot, seed=7))
    again = engine.generate(samples, GenerationParams(**hot, seed=7))
    assert [r.text for r in first] == [r.text for r in again]  # a seed makes sampling reproducible
    others = {tuple(r.text for r in engine.generate(samples, GenerationParams(**hot, seed=s))) for s in range(4)}
    assert len(others) > 1  # ...and sampling really samples


@pytest.mark.parametrize("family", ["qwen2_vl", "smolvlm"])
def test_a_bad_request_fails_alone_and_the_batch_goes_on(engine_for, images, tmp_path, family):
    engine = engine_for(family)
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("this is text, not a PNG")
    good = mixed_batch(images)[:3]
    samples = [
        good[0],
        request("missing", images=[tmp_path / "nope.png"]),
        good[1],
        request("empty", "   ", images=[images[0]]),
        request("text-file", images=[not_an_image]),
        good[2],
    ]
    results = engine.generate(samples, GREEDY)
    assert "file not found" in results[1].error and "nope.png" in results[1].error
    assert "empty question" in results[3].error
    assert "not an image" in results[4].error and "notes.png" in results[4].error
    for k in (1, 3, 4):
        assert results[k].finish_reason == "error" and results[k].text == ""
    expected = [r.text for r in engine.generate(good, GREEDY)]
    assert [results[k].text for k in (0, 2, 5)] == expected
    assert all(results[k].ok for k in (0, 2, 5))


def test_stream_refuses_bad_input_before_generating(engine_for, tmp_path):
    engine = engine_for("qwen2_vl")
    with pytest.raises(VlmkitError, match="file not found"):
        engine.stream(request("x", images=[tmp_path / "nope.png"]), GREEDY)
    with pytest.raises(VlmkitError, match="empty question"):
        engine.stream(request("x", ""), GREEDY)
    with pytest.raises(VlmkitError, match="reserved"):
        engine.stream(request("x", "what is <|image_pad|>?"), GREEDY)


def test_closing_a_stream_early_stops_generation(engine_for, images):
    engine = engine_for("qwen2_vl")
    stream = engine.stream(request("x", images=[images[0]]), GenerationParams(max_new_tokens=200))
    next(stream)
    stream.close()
    assert stream.result is None
    assert engine.generate([request("y", "still works?")], GREEDY)[0].ok  # the engine lock was released


def test_engine_protocol_and_manifest_info(engine_for):
    engine = engine_for("qwen2_vl", min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16)
    assert isinstance(engine, Engine)
    info = engine.info()
    assert info["family"] == "qwen2_vl" and info["backend"] == "hf" and info["model"] == engine.model_id
    assert info["media"]["min_pixels"] == 28 * 28 * 4 and info["media"]["max_pixels"] == 28 * 28 * 16
    assert info["dtype"] == "float32" and info["adapter"] is None


def test_pixel_bounds_change_the_prompt_per_engine_and_per_call(engine_for, images):
    from vlmkit.infer import MediaSettings

    sample = request("big", images=[images[4]])  # 200x60
    small = engine_for("qwen2_vl", max_pixels=28 * 28 * 4).generate([sample], GREEDY)[0]
    large = engine_for("qwen2_vl").generate([sample], GREEDY)[0]
    assert small.prompt_tokens < large.prompt_tokens
    per_call = engine_for("qwen2_vl").generate([sample], GREEDY, media=MediaSettings(max_pixels=28 * 28 * 4))[0]
    assert per_call.prompt_tokens == small.prompt_tokens and per_call.text == small.text


def test_requests_may_be_sample_shaped_dicts(engine_for, images):
    engine = engine_for("qwen2_vl")
    sample = request("a", "What is this?", images=[images[0]])
    as_dict = engine.generate([sample.to_json()], GREEDY)[0]
    assert as_dict.text == engine.generate([sample], GREEDY)[0].text
    with pytest.raises(VlmkitError, match="request 0"):
        engine.generate([{"id": "x", "messages": []}], GREEDY)


@pytest.mark.parametrize("stop", [(), ("the",), (" ",)])
def test_a_batch_streams_each_answer_and_the_pieces_add_up_to_it(engine_for, images, stop):
    engine = engine_for("qwen2_vl")
    params = GenerationParams(max_new_tokens=12, stop=stop)
    batch = mixed_batch(images)
    pieces: dict[int, list[str]] = {k: [] for k in range(len(batch))}
    streamed = engine.generate(batch, params, on_text=lambda index, text: pieces[index].append(text))
    plain = engine.generate(batch, params)
    assert [r.text for r in streamed] == [r.text for r in plain]
    for k, result in enumerate(streamed):
        assert "".join(pieces[k]) == result.text and all(pieces[k])
    assert sum(len(p) > 1 for p in pieces.values()) >= 1  # text arrives in steps, not only at the end
