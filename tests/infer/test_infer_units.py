"""The model-free parts of inference: parameters, answer text rules, length buckets, slices, file names."""

from __future__ import annotations

import random

import pytest
from infer_helpers import request

from vlmkit.errors import ConfigError
from vlmkit.infer import GenerationParams, GenerationResult
from vlmkit.infer.batching import plan_batches, prompt_length_key
from vlmkit.infer.predict import parse_slice, safe_file_stem
from vlmkit.infer.text import StreamText, final_text


def test_params_defaults_are_greedy_and_hashable():
    params = GenerationParams()
    assert params.do_sample is False and params.num_beams == 1 and params.stop == ()
    assert hash(GenerationParams(stop=["a"])) == hash(GenerationParams(stop=("a",)))
    assert GenerationParams(stop="END").stop == ("END",)
    assert GenerationParams(stop=["x"]).to_dict()["stop"] == ["x"]


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"temperature": 0}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"num_beams": 0}, "num_beams"),
        ({"num_beams": 2, "do_sample": True}, "beam search with sampling"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
        ({"stop": [""]}, "stop strings"),
    ],
)
def test_params_reject_bad_values(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        GenerationParams(**kwargs)


def test_failed_result_carries_the_reason():
    result = GenerationResult.failed("image x.png: file not found")
    assert not result.ok and result.finish_reason == "error" and result.text == ""


def test_final_text_cuts_before_the_first_stop_then_strips():
    assert final_text("  Paris. END more END", ["END"]) == ("Paris.", True)
    assert final_text("\nHello\nWorld", ["\n"]) == ("", True)
    assert final_text(" no stop here ", ["###"]) == ("no stop here", False)
    assert final_text("a STOP b ###", ["###", "STOP"]) == ("a", True)


@pytest.mark.parametrize(
    "pieces, stop",
    [
        (["Hel", "lo wor", "ld", "  "], []),
        (["  ", "\n", "Answer", ": 42", "\n"], []),
        (["The ans", "wer is E", "N", "D and more"], ["END"]),
        (["a ", "b", " #", "#", "# tail"], ["###"]),
        (["x #", "# y ##", "#"], ["###"]),  # a partial stop that turns out not to be one
        (["caf", "\ufffd", "é ok"], []),  # half of a multi-byte character is held back
        (["\nHello", "\nWorld"], ["\n"]),  # stop string right at the start
    ],
)
def test_stream_pieces_add_up_to_the_batch_answer(pieces, stop):
    expected, _ = final_text("".join(pieces), stop)
    shown = StreamText(stop)
    out = [shown.feed(p) for p in pieces]
    out.append(shown.finish(expected))
    assert "".join(out) == expected
    for k in range(1, len(out)):  # never shows text that a later piece takes back
        assert expected.startswith("".join(out[:k]))


def test_stream_holds_back_a_possible_stop_prefix():
    shown = StreamText(["STOP"])
    assert shown.feed("yes ST") == "yes"
    assert shown.feed("O") == ""
    assert shown.feed("P after") == ""
    assert shown.stopped


def test_batches_cover_every_request_once_longest_first(images):
    samples = [request(f"s{k}", "q" * random.Random(k).randint(1, 300), images=images[: k % 3]) for k in range(23)]
    batches = plan_batches(samples, 5)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(23))
    assert all(len(b) <= 5 for b in batches) and len(batches) == 5
    keys = [prompt_length_key(samples[i]) for i in flat]
    assert keys == sorted(keys, reverse=True)


def test_image_questions_sort_apart_from_text_questions(images):
    text_only = request("t", "a fairly long text-only question " * 3)
    with_image = request("i", "short?", images=[images[0]])
    assert prompt_length_key(with_image) > prompt_length_key(text_only)


@pytest.mark.parametrize(
    "spec, total, expected",
    [
        (None, 10, slice(0, 10)),
        ("0:5", 10, slice(0, 5)),
        ("3:", 10, slice(3, 10)),
        (":4", 10, slice(0, 4)),
        ("9:10", 10, slice(9, 10)),
    ],
)
def test_slice_parsing(spec, total, expected):
    assert parse_slice(spec, total) == expected


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("10:20", "out of range"),
        ("0:11", "out of range"),
        ("5:5", "selects nothing"),
        ("abc", "START:STOP"),
        ("-1:3", "START:STOP"),
        ("3", "START:STOP"),
    ],
)
def test_slice_errors_are_clear(spec, fragment):
    with pytest.raises(ConfigError, match=fragment):
        parse_slice(spec, 10)


def test_file_stems_are_safe_and_distinct():
    assert safe_file_stem("docvqa-123") == "docvqa-123"
    a, b = safe_file_stem("a/b"), safe_file_stem("a_b")
    assert "/" not in a and a != b


def test_media_overrides_replace_config_values_and_keep_frame_modes_exclusive(tmp_path):
    from vlmkit.infer import MediaSettings
    from vlmkit.infer.settings import media_from_config, override_media

    config = tmp_path / "config.yaml"
    config.write_text(
        "model: {path: some/model}\n"
        "data: {train: data/train, min_pixels: 3136, max_pixels: 50176, nframes: 8, max_frames: 16}\n"
    )
    base = media_from_config(config)
    assert base == MediaSettings(min_pixels=3136, max_pixels=50176, nframes=8, fps=None, max_frames=16)
    assert override_media(base) == base
    assert override_media(base, max_pixels=12544).max_pixels == 12544
    by_rate = override_media(base, fps=1.0)
    assert (by_rate.fps, by_rate.nframes) == (1.0, None)
    with pytest.raises(ConfigError, match="min_pixels 3136 is above max_pixels 1000"):
        override_media(base, max_pixels=1000)
    with pytest.raises(ConfigError, match="not both"):
        override_media(base, nframes=2, fps=1.0)
    with pytest.raises(ConfigError, match="model: required key is missing"):
        (tmp_path / "bad.yaml").write_text("data: {train: x}\n")
        media_from_config(tmp_path / "bad.yaml")


def test_a_refused_resume_lets_go_of_the_predictions_file(tmp_path, images):
    """A run refused on resume (other settings) must not keep the file's lock: the same process can then open
    the run with the right settings (a notebook retrying), and another process can too."""
    import json

    from infer_helpers import write_dataset

    from vlmkit.errors import ConfigError
    from vlmkit.infer import GenerationParams
    from vlmkit.infer.predict import PredictionRun, manifest_path

    data = write_dataset(tmp_path / "data", images, n=3)
    out = tmp_path / "preds.jsonl"
    out.write_text(json.dumps({"id": "q0", "prediction": "x"}) + "\n")
    manifest_path(out).write_text(json.dumps({"model": "model-b"}))
    with pytest.raises(ConfigError, match="other settings") as refused:  # its traceback keeps the run alive
        PredictionRun(data, out, GenerationParams(), model="model-a")
    run = PredictionRun(data, out, GenerationParams(), model="model-b")  # not refused by the first one's lock
    assert len(run.todo) == 2 and refused.value is not None
    run.close()
