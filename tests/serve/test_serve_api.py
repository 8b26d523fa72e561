"""The real server on 127.0.0.1 and a free port, driven by the official `openai` client."""

from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from serve_helpers import MODEL, ask, mp4_data_url, png_data_url

GREEDY = {"model": MODEL, "temperature": 0, "max_tokens": 6}


def test_plain_question_answers_with_usage(client):
    reply = client.chat.completions.create(messages=[ask("What is in the picture?")], **GREEDY)
    choice = reply.choices[0]
    assert reply.object == "chat.completion" and reply.model == MODEL and reply.id.startswith("chatcmpl-")
    assert isinstance(choice.message.content, str) and choice.message.role == "assistant"
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 0 and 0 < reply.usage.completion_tokens <= 6
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_image_question_counts_the_image_tokens(client):
    text_only = client.chat.completions.create(messages=[ask("What colour is it?")], **GREEDY)
    with_image = client.chat.completions.create(messages=[ask("What colour is it?", png_data_url())], **GREEDY)
    assert with_image.usage.prompt_tokens > text_only.usage.prompt_tokens


def test_video_question(client, tmp_path):
    message = {
        "role": "user",
        "content": [
            {"type": "video_url", "video_url": {"url": mp4_data_url(tmp_path)}},
            {"type": "text", "text": "What happens?"},
        ],
    }
    reply = client.chat.completions.create(messages=[message], **GREEDY)
    assert reply.usage.prompt_tokens > 20 and reply.choices[0].finish_reason in ("stop", "length")


def test_streaming_gives_the_same_text_and_usage_at_the_end(client):
    messages = [ask("Describe it.", png_data_url(seed=1))]
    whole = client.chat.completions.create(messages=messages, **GREEDY)
    chunks = list(
        client.chat.completions.create(messages=messages, stream=True, stream_options={"include_usage": True}, **GREEDY)
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    assert len({c.id for c in chunks}) == 1


def sse_payloads(server, body: dict) -> list:
    import json

    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=120) as response:
        lines = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


@pytest.mark.parametrize("include_usage", [False, True])
def test_stream_chunks_carry_only_the_fields_openai_sends(server, include_usage):
    body = {"messages": [ask("Describe it.")], "stream": True, **GREEDY, "max_tokens": 8}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    chunks = sse_payloads(server, body)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert all(set(d) == {"content"} and d["content"] for d in deltas[1:-1]), deltas  # no "role": null
    assert deltas[-1] == {} and chunks[len(deltas) - 1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[: len(deltas) - 1])
    # OpenAI sends `usage` (null until the last chunk) only when it was asked for.
    assert all(("usage" in c) == include_usage for c in chunks)
    if include_usage:
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


def test_multi_turn_conversation_keeps_the_history(client):
    first = ask("What is this?", png_data_url(seed=2))
    one = client.chat.completions.create(messages=[first], **GREEDY)
    history = [first, {"role": "assistant", "content": one.choices[0].message.content}, ask("Are you sure?")]
    two = client.chat.completions.create(messages=history, **GREEDY)
    assert two.usage.prompt_tokens > one.usage.prompt_tokens + one.usage.completion_tokens
    system = {
        "role": "system",
        "content": "Answer every question about the picture with one short word, and never use any punctuation at all.",
    }  # longer than Qwen's default
    with_system = client.chat.completions.create(messages=[system, *history], **GREEDY)
    assert with_system.usage.prompt_tokens > two.usage.prompt_tokens


def test_stop_sequences_and_max_tokens_are_honoured(client):
    reply = client.chat.completions.create(messages=[ask("Count.")], model=MODEL, temperature=0, max_tokens=3)
    assert reply.usage.completion_tokens <= 3
    full = client.chat.completions.create(messages=[ask("Count.")], model=MODEL, temperature=0, max_tokens=12)
    text = full.choices[0].message.content
    if len(text) > 2:  # cut at a stop string taken from the answer itself
        stopped = client.chat.completions.create(
            messages=[ask("Count.")], model=MODEL, temperature=0, max_tokens=12, stop=[text[2:4]]
        )
        assert stopped.choices[0].message.content == text[: text.index(text[2:4])]


def test_sampling_with_a_seed_is_repeatable(client):
    args = dict(messages=[ask("Say something.")], model=MODEL, temperature=1.0, top_p=0.9, seed=7, max_tokens=8)
    assert (
        client.chat.completions.create(**args).choices[0].message.content
        == client.chat.completions.create(**args).choices[0].message.content
    )


def test_concurrent_requests_each_get_their_own_answer(client, server):
    questions = [ask(f"Question number {k}?", png_data_url(seed=k) if k % 2 else None) for k in range(6)]
    alone = [client.chat.completions.create(messages=[q], **GREEDY).choices[0].message.content for q in questions]
    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(lambda q: client.chat.completions.create(messages=[q], **GREEDY), questions))
    assert [r.choices[0].message.content for r in together] == alone
    stats = httpx.get(f"{server.url}/v1/stats").json()
    assert stats["requests"] >= 12 and stats["batches"] <= stats["requests"]


def test_models_health_and_stats(client, server):
    assert [m.id for m in client.models.list().data] == [MODEL]
    assert client.models.retrieve(MODEL).id == MODEL
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok", "auth_required": False}
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


@pytest.mark.parametrize(
    "host, status",
    [
        ("evil.example", 400),
        ("evil.example:80", 400),
        ("127.0.0.1.nip.io", 400),
        ("localhost", 200),
        ("[::1]:8000", 200),
        ("127.0.0.1", 200),
    ],
)
def test_only_loopback_host_names_are_answered_by_default(server, host, status):
    """A page on another site that rebinds its DNS name to 127.0.0.1 still sends its own name as Host."""
    response = httpx.get(f"{server.url}/v1/models", headers={"Host": host})
    assert response.status_code == status
    if status == 400:
        assert response.json()["error"]["code"] == "host_not_allowed"


# --- API key --------------------------------------------------------------------------------------


def test_with_the_api_key_the_client_is_served(keyed_server):
    client = openai.OpenAI(base_url=f"{keyed_server.url}/v1", api_key="sesame-123", max_retries=0)
    assert client.chat.completions.create(messages=[ask("Hi?")], **GREEDY).usage.completion_tokens > 0
    stream = client.chat.completions.create(messages=[ask("Hi?")], stream=True, **GREEDY)
    assert any(c.choices and c.choices[0].finish_reason for c in stream)


@pytest.mark.parametrize("key", ["wrong-key", "sesame-1234", "sesame-12"])
def test_a_wrong_api_key_is_401(keyed_server, key):
    client = openai.OpenAI(base_url=f"{keyed_server.url}/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(messages=[ask("Hi?")], **GREEDY)
    assert info.value.status_code == 401 and "API key" in info.value.message
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


@pytest.mark.parametrize("route", ["/v1/models", "/v1/stats", f"/v1/models/{MODEL}"])
def test_every_api_route_but_health_needs_the_key(keyed_server, route):
    response = httpx.get(keyed_server.url + route)
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(keyed_server.url + route, headers={"Authorization": "Bearer sesame-123"}).status_code == 200
    assert httpx.post(f"{keyed_server.url}/v1/chat/completions", json={}).status_code == 401  # before validation
    assert httpx.get(f"{keyed_server.url}/health").json() == {"status": "ok", "auth_required": True}
