"""`ChatClient.astream` / `OpenAIEngine.astream` (what `vlmkit serve --engine vllm` passes streams through) against a
real 127.0.0.1 endpoint: pieces as the endpoint sends them, faults retried until the first piece, a refusal
ending the stream as an error result, token counts from the usage chunk."""

from __future__ import annotations

import asyncio

from fake_openai import FakeOpenAI, last_user_text

from vlmkit.data.schema import Sample
from vlmkit.infer import GenerationParams
from vlmkit.infer.options import EndpointSettings, EngineOptions


def collect(engine, question: str) -> tuple[list[str], object]:
    async def run() -> tuple[list[str], object]:
        sample = Sample(id="s", messages=[{"role": "user", "content": question}])
        pieces, result = [], None
        async for item in engine.astream(sample, GenerationParams(max_new_tokens=8)):
            if isinstance(item, str):
                pieces.append(item)
            else:
                result = item
        return pieces, result

    return asyncio.run(run())


def test_stream_pieces_retries_before_the_first_piece_and_refusals(monkeypatch):
    monkeypatch.setattr("vlmkit.infer.openai_client.BACKOFF_BASE_S", 0.01)
    faults = {"flaky one": ["503", "429"], "bad one": ["400"]}
    with FakeOpenAI(faults=faults, usage=lambda body, text: (7, 3)) as fake:
        endpoint = EndpointSettings(base_url=fake.url, max_retries=3)
        engine = EngineOptions(engine="openai", endpoint=endpoint).load("fake-model")
        pieces, result = collect(engine, "flaky one")
        assert pieces == ["echo:", " flaky", " one"] and fake.attempts["flaky one"] == 3
        assert result.text == "echo: flaky one" and (result.prompt_tokens, result.completion_tokens) == (7, 3)
        assert result.finish_reason == "stop" and result.error is None
        assert fake.bodies[-1]["stream"] is True and fake.bodies[-1]["max_tokens"] == 8
        assert fake.bodies[-1]["temperature"] == 0  # greedy, as the non-streamed request

        pieces, result = collect(engine, "bad one")
        assert pieces == [] and result.finish_reason == "error" and "never work" in result.error
        assert fake.attempts["bad one"] == 1  # a 400 is final


def test_answers_are_stripped_as_the_local_engine_strips_them_and_the_pieces_add_up():
    """A chat model behind an API often opens with a newline or ends with one; the in-process engine strips its
    answers (infer/text.py), so the same answer must not differ between engines (exact match, votes, reports),
    and a stream's pieces must add up to the stripped answer."""
    padded = lambda body: f"\n\n {last_user_text(body)} \n"  # noqa: E731
    with FakeOpenAI(answer=padded) as fake:
        engine = EngineOptions(engine="openai", endpoint=EndpointSettings(base_url=fake.url)).load("fake-model")
        [result] = engine.generate([Sample(id="s", messages=[{"role": "user", "content": "yes it is"}])])
        assert result.text == "yes it is"
        pieces, streamed = collect(engine, "yes it is")
        assert streamed.text == "yes it is" and "".join(pieces) == "yes it is"
