"""Dynamic batching over the real engine: bounded batches, grouping by parameters, queue order, isolation of a
bad request, streams batched with plain requests, back-pressure and early stop.

Requests are queued before the collector starts, so which requests share a batch is deterministic.
"""

import asyncio

import pytest

from vlmkit.data.schema import Sample
from vlmkit.infer import GenerationParams
from vlmkit.serve.batcher import DynamicBatcher
from vlmkit.serve.errors import ApiError

GREEDY = GenerationParams(max_new_tokens=5)


def sample(k: int, text: str | None = None) -> Sample:
    return Sample(id=f"q{k}", messages=[{"role": "user", "content": text if text is not None else f"Question {k}?"}])


async def run_queued(batcher: DynamicBatcher, calls: list) -> list:
    """Queue every call, then start the collector and gather the results (exceptions included)."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    await asyncio.sleep(0)  # let each task reach the queue
    batcher.start()
    try:
        return await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await batcher.stop()


def test_queued_requests_run_as_one_batch_with_the_engines_answers(engine):
    samples = [sample(k) for k in range(5)]
    batcher = DynamicBatcher(engine, max_batch=8, max_wait_s=0.01)
    results = asyncio.run(run_queued(batcher, [batcher.generate(s, GREEDY) for s in samples]))
    assert batcher.stats.batch_sizes == {5: 1}
    assert [r.text for r in results] == [r.text for r in engine.generate(samples, GREEDY)]


def test_batches_never_exceed_max_batch(engine):
    batcher = DynamicBatcher(engine, max_batch=2, max_wait_s=0.01)
    results = asyncio.run(run_queued(batcher, [batcher.generate(sample(k), GREEDY) for k in range(5)]))
    assert all(r.ok for r in results)
    assert batcher.stats.batch_sizes == {2: 2, 1: 1} and batcher.stats.largest_batch == 2


def test_requests_with_different_params_share_a_batch_but_not_a_generate_call(engine):
    short, long = GenerationParams(max_new_tokens=2), GenerationParams(max_new_tokens=6)
    batcher = DynamicBatcher(engine, max_batch=8, max_wait_s=0.01)
    calls = [batcher.generate(sample(k), short if k % 2 else long) for k in range(4)]
    results = asyncio.run(run_queued(batcher, calls))
    assert [r.completion_tokens <= (2 if k % 2 else 6) for k, r in enumerate(results)] == [True] * 4
    assert results[0].text == engine.generate([sample(0)], long)[0].text
    assert batcher.stats.batches == 1


def test_a_bad_request_fails_alone(engine):
    batcher = DynamicBatcher(engine, max_batch=8, max_wait_s=0.01)
    calls = [
        batcher.generate(sample(0), GREEDY),
        batcher.generate(sample(1, text="  "), GREEDY),
        batcher.generate(sample(2), GREEDY),
    ]
    good, bad, other = asyncio.run(run_queued(batcher, calls))
    assert good.ok and other.ok and not bad.ok and "empty question" in bad.error


def test_a_stream_joins_the_batch_of_plain_requests_and_matches_generate(engine):
    async def scenario(batcher):
        first = asyncio.ensure_future(batcher.generate(sample(0), GREEDY))
        await asyncio.sleep(0)
        stream = batcher.stream(sample(1), GREEDY)
        last = asyncio.ensure_future(batcher.generate(sample(2), GREEDY))
        await asyncio.sleep(0)
        batcher.start()
        pieces = [piece async for piece in stream]
        results = await asyncio.gather(first, last)
        await batcher.stop()
        return pieces, stream.result, results

    batcher = DynamicBatcher(engine, max_batch=8, max_wait_s=0.01)
    pieces, result, (first, last) = asyncio.run(scenario(batcher))
    assert "".join(pieces) == engine.generate([sample(1)], GREEDY)[0].text == result.text
    assert result.completion_tokens > 0 and result.prompt_tokens > 0
    assert first.ok and last.ok
    assert batcher.stats.streams == 1 and batcher.stats.batch_sizes == {3: 1}  # one batch, one generate call


def test_concurrent_streams_are_batched_like_plain_requests(engine):
    samples = [sample(k, "Describe it " + "in detail " * k) for k in range(4)]

    async def scenario(batcher):
        streams = [batcher.stream(s, GREEDY) for s in samples]
        batcher.start()

        async def read(stream):
            return [piece async for piece in stream], stream.result

        outcomes = await asyncio.gather(*(read(s) for s in streams))
        await batcher.stop()
        return outcomes

    batcher = DynamicBatcher(engine, max_batch=8, max_wait_s=0.01)
    outcomes = asyncio.run(scenario(batcher))
    expected = engine.generate(samples, GREEDY)
    assert ["".join(pieces) for pieces, _ in outcomes] == [r.text for r in expected]
    assert [result.completion_tokens for _, result in outcomes] == [r.completion_tokens for r in expected]
    assert batcher.stats.streams == 4 and batcher.stats.batch_sizes == {4: 1}


def test_a_stream_error_reaches_the_reader(engine):
    async def scenario(batcher):
        stream = batcher.stream(sample(0, text=""), GREEDY)
        batcher.start()
        try:
            return [piece async for piece in stream]
        finally:
            await batcher.stop()

    with pytest.raises(Exception, match="empty question"):
        asyncio.run(scenario(DynamicBatcher(engine)))


def test_closing_a_stream_early_frees_the_engine_for_the_next_request(engine):
    async def scenario(batcher):
        batcher.start()
        stream = batcher.stream(sample(0), GenerationParams(max_new_tokens=48))
        async for _ in stream:
            break
        await stream.aclose()
        result = await batcher.generate(sample(1), GREEDY)
        await batcher.stop()
        return result

    assert asyncio.run(scenario(DynamicBatcher(engine))).ok


def test_a_full_queue_answers_429(engine):
    async def scenario(batcher):
        waiting = [asyncio.ensure_future(batcher.generate(sample(k), GREEDY)) for k in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(ApiError) as info:
            await batcher.generate(sample(9), GREEDY)
        for task in waiting:
            task.cancel()
        return info.value

    error = asyncio.run(scenario(DynamicBatcher(engine, max_queue=2)))
    assert error.status == 429 and error.code == "server_busy"


def test_abandoned_requests_are_skipped(engine):
    async def scenario(batcher):
        gone = asyncio.ensure_future(batcher.generate(sample(0), GREEDY))
        kept = asyncio.ensure_future(batcher.generate(sample(1), GREEDY))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0)
        batcher.start()
        result = await kept
        await batcher.stop()
        return result

    batcher = DynamicBatcher(engine, max_batch=8, max_wait_s=0.01)
    assert asyncio.run(scenario(batcher)).ok
    assert batcher.stats.requests == 1


@pytest.mark.parametrize("interval_s", [0.0, 30.0])
def test_streamed_pieces_coalesce_without_losing_text_or_waiting(engine, interval_s):
    """The engine's text reaches the streams at most once per stream_interval_s (the first piece at once); the
    last pieces arrive with the answers, never an interval later, and every stream's text is whole."""
    samples = [sample(k, "Describe it " + "in detail " * k) for k in range(3)]
    params = GenerationParams(max_new_tokens=8)

    async def scenario(batcher):
        streams = [batcher.stream(s, params) for s in samples]
        batcher.start()

        async def read(stream):
            return [piece async for piece in stream]

        outcomes = await asyncio.wait_for(asyncio.gather(*(read(s) for s in streams)), timeout=20)
        await batcher.stop()
        return outcomes

    batcher = DynamicBatcher(engine, max_batch=8, max_wait_s=0.01, stream_interval_s=interval_s)
    outcomes = asyncio.run(scenario(batcher))
    assert ["".join(pieces) for pieces in outcomes] == [r.text for r in engine.generate(samples, params)]
    if interval_s:
        assert all(len(pieces) <= 2 for pieces in outcomes), outcomes  # the first flush, then the rest at the end
    else:
        assert max(len(pieces) for pieces in outcomes) > 2, outcomes  # every step flushed: text as it comes


class _FailsAfterStreamingABatch:
    """The real engine, except that a batch call raises after its text has streamed (a device lost at the end)."""

    def __init__(self, engine):
        self.engine = engine

    def generate(self, samples, params, *, cancel=None, on_text=None):
        results = self.engine.generate(samples, params, cancel=cancel, on_text=on_text)
        if len(samples) > 1:
            raise RuntimeError("device lost after the batch")
        return results


def test_a_failed_batch_retries_only_requests_whose_stream_has_not_begun(engine):
    """Requests of a failed batch are retried one by one, but a stream that has already shown text fails instead:
    a retry would stream its answer a second time after the first pieces."""

    async def scenario(batcher):
        plain = asyncio.ensure_future(batcher.generate(sample(0), GREEDY))
        await asyncio.sleep(0)
        stream = batcher.stream(sample(1, "Describe it in detail"), GREEDY)
        batcher.start()
        pieces, error = [], None
        try:
            async for piece in stream:
                pieces.append(piece)
        except Exception as exc:
            error = exc
        answer = await plain
        await batcher.stop()
        return pieces, error, answer

    batcher = DynamicBatcher(_FailsAfterStreamingABatch(engine), max_batch=8, max_wait_s=0.01)
    pieces, error, answer = asyncio.run(scenario(batcher))
    expected = engine.generate([sample(1, "Describe it in detail")], GREEDY)[0].text
    assert answer.ok and answer.text == engine.generate([sample(0)], GREEDY)[0].text  # retried alone
    assert "".join(pieces) and expected.startswith("".join(pieces))  # never the answer twice
    assert isinstance(error, RuntimeError) and "device lost" in str(error)
