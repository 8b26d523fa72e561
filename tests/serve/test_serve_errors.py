"""Bad requests get the right 4xx as an OpenAI-style JSON error (never a traceback), and the next good request
still answers."""

import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image
from serve_helpers import MODEL, ask, png_data_url, start_server


@pytest.fixture(scope="module")
def strict_server(engine):
    """Small caps, and remote media allowed, so the SSRF guard (not the on/off switch) answers."""
    srv = start_server(
        engine,
        max_body_bytes=200_000,
        max_tokens_cap=64,
        max_queue=64,
        media={"max_image_bytes": 20_000, "max_image_pixels": 256 * 256, "allow_remote": True},
    )
    yield srv
    srv.__exit__()


def noise_png_url(side: int) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def chat(**fields):
    return {"model": MODEL, "max_tokens": 4, "temperature": 0, "messages": [ask("What is it?")], **fields}


def image_chat(url: str) -> dict:
    return chat(messages=[ask("What is it?", url)])


def post(url, body=None, *, raw=None, headers=None):
    headers = {"Content-Type": "application/json", **(headers or {})}
    return httpx.post(
        f"{url}/v1/chat/completions", json=body if raw is None else None, content=raw, headers=headers, timeout=60
    )


BAD_REQUESTS = {
    "malformed JSON": (dict(raw=b'{"model": "x", "messages": [}'), 400, "invalid_json"),
    "not JSON at all": (dict(raw=b"hello"), 400, "invalid_json"),
    "empty body": (dict(raw=b""), 400, "invalid_json"),
    "messages is a string": (dict(body=chat(messages="hi")), 400, "invalid_request"),
    "content is a number": (dict(body=chat(messages=[{"role": "user", "content": 42}])), 400, "invalid_request"),
    "temperature is a word": (dict(body=chat(temperature="hot")), 400, "invalid_request"),
    "max_tokens is a word": (dict(body=chat(max_tokens="many")), 400, "invalid_request"),
    "unknown role": (dict(body=chat(messages=[{"role": "wizard", "content": "hi"}])), 400, "invalid_request"),
    "n = 3": (dict(body=chat(n=3)), 400, "invalid_request"),
    "body is a list": (dict(body=[1, 2, 3]), 400, "invalid_request"),
    "oversized image": (dict(body=image_chat(noise_png_url(120))), 413, "image_too_large"),
    "too many pixels": (dict(body=image_chat(png_data_url(300, 300))), 413, "image_too_large"),
    "oversized body": (dict(body=chat(messages=[ask("x" * 300_000)])), 413, "request_too_large"),
    "non-image bytes": (
        dict(body=image_chat("data:image/png;base64," + base64.b64encode(b"MZ\x90\x00" * 50).decode())),
        400,
        "invalid_image",
    ),
    "file:///etc/passwd": (dict(body=image_chat("file:///etc/passwd")), 400, "local_media_refused"),
    "local path": (dict(body=image_chat("/etc/passwd")), 400, "local_media_refused"),
    "URL to 127.0.0.1": (dict(body=image_chat("http://127.0.0.1:22/x.png")), 400, "media_url_refused"),
    "URL to metadata": (dict(body=image_chat("http://169.254.169.254/latest/meta-data/")), 400, "media_url_refused"),
    "URL to localhost": (dict(body=image_chat("http://localhost/x.png")), 400, "media_url_refused"),
    "unknown model": (dict(body=chat(model="gpt-4o")), 404, "model_not_found"),
    "max_tokens 10^9": (dict(body=chat(max_tokens=10**9)), 400, "max_tokens_too_large"),
    "last turn not user": (
        dict(body=chat(messages=[ask("q"), {"role": "assistant", "content": "a"}])),
        400,
        "invalid_messages",
    ),
    "empty question": (dict(body=chat(messages=[ask("   ")])), 400, "invalid_messages"),
    "image token in text": (dict(body=chat(messages=[ask("<|image_pad|> what?")])), 400, "invalid_messages"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_gets_a_json_4xx_and_the_server_keeps_serving(strict_server, case):
    kwargs, status, code = BAD_REQUESTS[case]
    response = post(strict_server.url, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and error["type"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    good = post(strict_server.url, chat())
    assert good.status_code == 200 and good.json()["usage"]["completion_tokens"] > 0


def test_remote_media_are_refused_when_not_enabled(server):
    response = post(server.url, image_chat("https://example.com/cat.png"))
    assert response.status_code == 400 and response.json()["error"]["code"] == "remote_media_disabled"


def test_validation_errors_name_the_field(strict_server):
    error = post(strict_server.url, chat(temperature="hot")).json()["error"]
    assert error["param"] == "temperature" and "temperature" in error["message"]
    error = post(strict_server.url, chat(messages=[{"role": "user", "content": [{"type": "audio"}]}])).json()["error"]
    assert error["message"].startswith("messages[0].content[0]: ") and error["param"] == "messages[0].content[0]"
    assert "'text', 'image_url', 'video_url'" in error["message"]
    error = post(strict_server.url, chat(messages=[{"role": "user", "content": 42}])).json()["error"]
    assert error["message"] == "messages[0].content: Input should be a valid string; or Input should be a valid list"
    bad_url = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 3}}]}]
    error = post(strict_server.url, chat(messages=bad_url)).json()["error"]
    assert error["param"] == "messages[0].content[0].image_url.url", error
    assert error["message"] == "messages[0].content[0].image_url.url: Input should be a valid string"
    missing = post(strict_server.url, {"messages": [ask("hi")]}).json()["error"]
    assert missing["param"] == "model"


# What OpenAI's API answers too: 400, `param` naming the field (never FastAPI's 422).
UNSUPPORTED = {
    "n = 2": ({"n": 2}, "n"),
    "logprobs": ({"logprobs": True}, "logprobs"),
    "tools": ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    "JSON mode": ({"response_format": {"type": "json_object"}}, "response_format"),
    "max_tokens = 0": ({"max_tokens": 0}, "max_tokens"),
    "max_tokens = 100000": ({"max_tokens": 100_000}, "max_tokens"),
    "max_completion_tokens = 0": ({"max_completion_tokens": 0}, "max_completion_tokens"),
    "top_p = 0": ({"top_p": 0}, "top_p"),
}


@pytest.mark.parametrize("case", list(UNSUPPORTED))
def test_unsupported_or_out_of_range_fields_are_400_naming_the_param(strict_server, case):
    fields, param = UNSUPPORTED[case]
    response = post(strict_server.url, chat(**fields))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert error["message"].startswith(param), error["message"]


def test_unknown_routes_and_methods_are_json_errors(strict_server):
    missing = httpx.get(f"{strict_server.url}/v1/completions")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong_method = httpx.get(f"{strict_server.url}/v1/chat/completions")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == "method_not_allowed"
    assert httpx.get(f"{strict_server.url}/docs").status_code == 404  # no unauthenticated API docs


def test_streaming_requests_are_refused_before_the_stream_starts(strict_server):
    response = post(strict_server.url, chat(stream=True, max_tokens=10**9))
    assert response.status_code == 400 and response.headers["content-type"].startswith("application/json")
    response = post(strict_server.url, image_chat("file:///etc/shadow") | {"stream": True})
    assert response.status_code == 400


def test_a_client_that_hangs_up_mid_stream_does_not_stop_the_server(strict_server):
    with httpx.stream(
        "POST", f"{strict_server.url}/v1/chat/completions", json=chat(stream=True, max_tokens=64), timeout=60
    ) as response:
        assert response.status_code == 200
        first = next(response.iter_lines())
        assert first.startswith("data: ")
    good = post(strict_server.url, chat())
    assert good.status_code == 200


def test_internal_errors_are_a_generic_500_without_details(caplog):
    from vlmkit.serve.app import _error_response

    status, body = _error_response(RuntimeError("boom at /secret/path/model.py line 3"))
    assert status == 500 and body["error"]["code"] == "internal_error"
    assert "secret" not in str(body) and "boom" in caplog.text  # the details go to the server log only


def test_a_10_mb_question_is_refused_with_the_numbers_and_the_server_keeps_serving(server):
    response = post(server.url, chat(messages=[ask("x" * 10_000_000)]))
    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    assert "10,000,000 characters, over the limit of" in error["message"]
    assert post(server.url, chat()).status_code == 200


@pytest.mark.parametrize("stream", [False, True])
def test_a_prompt_over_the_token_limit_is_a_400_before_any_stream_starts(server, stream):
    limit = server.app.state.engine_limits["max_prompt_tokens"]
    words = "word " * (limit + 100)  # under the character cap, over the token cap
    response = post(server.url, chat(messages=[ask(words)], stream=stream))
    assert response.status_code == 400, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    assert f"over the limit of {limit:,} tokens" in error["message"]
    assert post(server.url, chat(stream=stream)).status_code == 200
