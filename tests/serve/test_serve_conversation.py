"""OpenAI chat requests -> Sample + GenerationParams: roles, merging, media written per request, limits."""

import base64
import io

import pytest
from pydantic import ValidationError
from synthetic_media import make_image, write_video

from vlmkit.data.schema import ImagePart, TextPart, VideoPart
from vlmkit.serve.conversation import request_to_params, request_to_sample
from vlmkit.serve.errors import ApiError
from vlmkit.serve.media_fetch import MediaPolicy
from vlmkit.serve.openai_schema import ChatCompletionRequest


def image_url() -> str:
    buffer = io.BytesIO()
    make_image(40, 30).save(buffer, format="JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def request(*messages, **fields) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "m", "messages": list(messages), **fields})


def to_sample(req, tmp_path, policy=None, video=True):
    return request_to_sample(req, tmp_path / "req", policy or MediaPolicy(), supports_video=video)


def test_plain_string_and_part_lists_become_one_sample(tmp_path):
    sample = to_sample(
        request(
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": image_url()}},
                    {"type": "text", "text": "What colour?"},
                ],
            },
            {"role": "assistant", "content": "Orange."},
            {"role": "user", "content": "And the shape?"},
        ),
        tmp_path,
    )
    roles = [m.role for m in sample.messages]
    assert roles == ["system", "user", "assistant", "user"]
    image = sample.messages[1].content[0]
    assert isinstance(image, ImagePart)
    written = tmp_path / "req" / image.image.rsplit("/", 1)[1]
    assert written.exists() and written.suffix == ".jpg"
    assert sample.question() == "And the shape?"


def test_consecutive_messages_of_one_role_are_merged(tmp_path):
    sample = to_sample(
        request(
            {"role": "user", "content": "Look:"},
            {"role": "user", "content": [{"type": "image_url", "image_url": image_url()}]},
            {"role": "user", "content": "what is it?"},
        ),
        tmp_path,
    )
    assert len(sample.messages) == 1
    kinds = [type(p) for p in sample.messages[0].content]
    assert kinds == [TextPart, ImagePart, TextPart]


@pytest.mark.parametrize(
    "messages, words",
    [
        ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "last message"),
        ([{"role": "assistant", "content": "hi"}, {"role": "user", "content": "q"}], "first non-system"),
        ([{"role": "system", "content": "s"}], "last message"),
    ],
)
def test_turn_order_problems_are_400(tmp_path, messages, words):
    with pytest.raises(ApiError) as info:
        to_sample(request(*messages), tmp_path)
    assert info.value.status == 400 and words in info.value.message


def test_media_refusals_name_the_message_and_part(tmp_path):
    req = request(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "q"},
                {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}},
            ],
        }
    )
    with pytest.raises(ApiError) as info:
        to_sample(req, tmp_path)
    assert info.value.message.startswith("messages[0].content[1]: ")
    assert info.value.param == "messages[0].content[1]" and info.value.code == "local_media_refused"


def test_too_many_media_parts_are_413(tmp_path):
    parts = [{"type": "image_url", "image_url": {"url": image_url()}}] * 3
    with pytest.raises(ApiError) as info:
        to_sample(request({"role": "user", "content": parts}), tmp_path, MediaPolicy(max_media_per_request=2))
    assert info.value.status == 413


def test_videos_are_written_probed_and_refused_where_unsupported(tmp_path):
    video = write_video(tmp_path / "clip.mp4", n_frames=6)
    url = "data:video/mp4;base64," + base64.b64encode(video.read_bytes()).decode()
    req = request(
        {
            "role": "user",
            "content": [{"type": "video_url", "video_url": {"url": url}}, {"type": "text", "text": "What happens?"}],
        }
    )
    part = to_sample(req, tmp_path).messages[0].content[0]
    assert isinstance(part, VideoPart) and part.video.endswith(".mp4")
    with pytest.raises(ApiError) as info:
        to_sample(req, tmp_path, video=False)
    assert info.value.code == "video_unsupported"
    with pytest.raises(ApiError) as info:
        to_sample(req, tmp_path, MediaPolicy(max_video_frames=3))
    assert info.value.status == 413


def test_bytes_that_are_not_a_video_are_400(tmp_path):
    url = "data:video/mp4;base64," + base64.b64encode(b"definitely not a video" * 10).decode()
    with pytest.raises(ApiError) as info:
        to_sample(request({"role": "user", "content": [{"type": "video_url", "video_url": {"url": url}}]}), tmp_path)
    assert info.value.status == 400 and info.value.code == "invalid_video"


# --- generation parameters -----------------------------------------------------------------------


def params(**fields):
    return request_to_params(
        request({"role": "user", "content": "q"}, **fields), default_max_tokens=32, max_tokens_cap=100
    )


def test_sampling_fields_map_to_generation_params():
    greedy = params(temperature=0, max_tokens=7, stop="END")
    assert (greedy.do_sample, greedy.max_new_tokens, tuple(greedy.stop)) == (False, 7, ("END",))
    sampled = params(temperature=0.7, top_p=0.9, seed=3)
    assert (sampled.do_sample, sampled.temperature, sampled.top_p, sampled.seed) == (True, 0.7, 0.9, 3)
    assert params().do_sample is True and params().max_new_tokens == 32  # OpenAI's default: temperature 1
    assert params(max_tokens=5, max_completion_tokens=9).max_new_tokens == 9


def test_max_tokens_over_the_cap_is_400():
    with pytest.raises(ApiError) as info:
        params(max_tokens=10**9)
    assert info.value.status == 400 and info.value.param == "max_tokens"


@pytest.mark.parametrize(
    "fields",
    [
        {"n": 2},
        {"tools": [{"type": "function"}]},
        {"logprobs": True},
        {"stop": ["a", "b", "c", "d", "e"]},
        {"temperature": 3},
        {"response_format": {"type": "json_object"}},
        {"stream": "yes"},
        {"max_tokens": 0},
        {"messages": []},
    ],
)
def test_unsupported_or_out_of_range_fields_fail_validation(fields):
    body = {"model": "m", "messages": [{"role": "user", "content": "q"}], **fields}
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate(body)


def test_unknown_part_types_fail_validation():
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate(body)
