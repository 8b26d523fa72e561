"""`vlmkit serve` in front of a model in another server (`--engine vllm`): requests are passed on at once up to
--max-batch in flight (the other server batches them), the queue cap still answers 429, images reach the
endpoint, a stream refused before its first piece gets a status code, and a client that leaves mid-stream
frees its slot. The other server is tests/fake_openai.py on 127.0.0.1."""

from __future__ import annotations

import threading

import httpx
import openai
import pytest
from fake_openai import FakeOpenAI
from serve_helpers import MODEL, ask, png_data_url, start_server

from vlmkit.infer.options import EndpointSettings, EngineOptions


def remote_engine(fake: FakeOpenAI):
    options = EngineOptions(engine="openai", endpoint=EndpointSettings(base_url=fake.url, max_retries=0))
    return options.load("fake-model")


def test_requests_go_on_at_once_up_to_max_batch_and_the_queue_cap_holds():
    with FakeOpenAI(latency=0.4) as fake:
        server = start_server(remote_engine(fake), max_batch=3, max_queue=2)
        try:
            results: list = [None] * 8

            def one(i: int) -> None:
                response = httpx.post(
                    f"{server.url}/v1/chat/completions",
                    json={"model": MODEL, "messages": [ask(f"question {i}", png_data_url(seed=i))]},
                    timeout=30,
                )
                results[i] = (response.status_code, response.json())

            threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            server.__exit__()
    answered = [body for status, body in results if status == 200]
    busy = [body for status, body in results if status == 429]
    assert len(answered) + len(busy) == 8 and busy and busy[0]["error"]["code"] == "server_busy"
    assert len(answered) >= 3 and fake.max_in_flight == 3  # as many as allowed, together, no more
    assert {b["choices"][0]["message"]["content"] for b in answered} <= {f"echo: question {i}" for i in range(8)}
    sent = fake.bodies[0]["messages"][0]["content"]
    assert sent[0]["type"] == "image_url" and sent[0]["image_url"]["url"].startswith("data:image/png;base64,")


def test_streams_pass_through_and_a_refusal_before_the_first_piece_is_a_status():
    with FakeOpenAI(faults={"bad one": ["400"]}) as fake:
        server = start_server(remote_engine(fake), max_batch=1)
        try:
            client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=30)
            stream = client.chat.completions.create(model=MODEL, messages=[ask("a b c")], stream=True)
            pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
            assert pieces == ["echo:", " a", " b", " c"]
            with pytest.raises(openai.BadRequestError, match="never work"):
                client.chat.completions.create(model=MODEL, messages=[ask("bad one")], stream=True)
            with client.chat.completions.create(model=MODEL, messages=[ask("x y z")], stream=True) as left:
                next(iter(left))  # the client leaves after the first chunk
            # its slot (the only one) was given back: the next request is answered
            again = client.chat.completions.create(model=MODEL, messages=[ask("after")])
            assert again.choices[0].message.content == "echo: after"
            stats = httpx.get(f"{server.url}/v1/stats", timeout=10).json()
            assert stats["streams"] == 3 and stats["requests"] == 4
        finally:
            server.__exit__()
