"""Video questions on the Qwen families: frame sampling by count or rate, odd frame counts, alignment checks."""

from __future__ import annotations

import pytest
from infer_helpers import request

from vlmkit.errors import VlmkitError
from vlmkit.infer import GenerationParams

QWEN = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"]
GREEDY = GenerationParams(max_new_tokens=12)


@pytest.mark.parametrize("family", QWEN)
def test_video_questions_answer_and_batch_like_single(engine_for, images, video, family):
    engine = engine_for(family, nframes=4)
    samples = [
        request("v", "What happens in the video?", videos=[video]),
        request("i", "What is this?", images=[images[1]]),
        request("vi", "Does the picture appear in the video?", images=[images[0]], videos=[video]),
    ]
    batched = engine.generate(samples, GREEDY)
    assert [r.error for r in batched] == [None, None, None]
    assert all(r.completion_tokens > 0 for r in batched)
    assert [r.text for r in batched] == [engine.generate([s], GREEDY)[0].text for s in samples]
    assert engine.stream(samples[0], GREEDY).text() == batched[0].text


@pytest.mark.parametrize("family", QWEN)
@pytest.mark.parametrize("frames", [{"nframes": 1}, {"nframes": 3}, {"nframes": 5}, {"fps": 2.0}])
def test_odd_and_rate_based_frame_counts_are_aligned(engine_for, video, family, frames):
    engine = engine_for(family, **frames)
    result = engine.generate([request("v", "What moves?", videos=[video])], GREEDY)[0]
    assert result.ok, result.error
    assert result.completion_tokens > 0


def test_more_frames_mean_more_video_tokens(engine_for, video):
    sample = request("v", "What moves?", videos=[video])
    few = engine_for("qwen2_vl", nframes=2).generate([sample], GREEDY)[0]
    many = engine_for("qwen2_vl", nframes=8).generate([sample], GREEDY)[0]
    assert many.prompt_tokens > few.prompt_tokens


def test_video_on_a_family_without_video_is_a_clear_error(engine_for, video):
    result = engine_for("llava").generate([request("v", "What happens?", videos=[video])], GREEDY)[0]
    assert result.error == "llava models do not take video input"


def test_unreadable_video_fails_alone(engine_for, images, tmp_path):
    from synthetic_media import write_empty_video

    empty = write_empty_video(tmp_path / "empty.mp4")
    engine = engine_for("qwen2_vl", nframes=4)
    results = engine.generate(
        [request("e", "What happens?", videos=[empty]), request("i", "What is this?", images=[images[0]])], GREEDY
    )
    assert "empty.mp4" in results[0].error and "frames" in results[0].error
    assert results[1].ok


def test_placeholder_text_in_a_question_is_refused(engine_for, video):
    result = engine_for("qwen2_vl").generate([request("v", "what is <|video_pad|> here?", videos=[video])], GREEDY)[0]
    assert "reserved" in result.error and "<|video_pad|>" in result.error


@pytest.mark.parametrize("family", QWEN)
def test_misaligned_video_tokens_are_caught_before_generation(engine_for, images, video, family):
    """Seed 003 died inside the model with "Video features and video tokens do not match"; the check names
    the sample instead. Cut one video token out of a real batch, as a truncation would."""
    from vlmkit.data.collate import MediaSettings, VlmCollator
    from vlmkit.infer.media_check import check_media_tokens

    engine = engine_for(family)
    samples = [request("fine", "What is this?", images=[images[0]]), request("clip", "What happens?", videos=[video])]
    collator = VlmCollator(engine.processor, engine.family, media=MediaSettings(nframes=4))
    batch = collator.generation_batch(samples)
    check_media_tokens(batch, samples, engine.family, engine.processor)  # the real batch is aligned

    video_id = engine.tokenizer.convert_tokens_to_ids(engine.family.video_token)
    position = int((batch["input_ids"][1] == video_id).nonzero()[0])
    batch["input_ids"][1, position] = engine.tokenizer.pad_token_id
    with pytest.raises(VlmkitError, match=r"sample 'clip'.*video.*cannot be aligned"):
        check_media_tokens(batch, samples, engine.family, engine.processor)
