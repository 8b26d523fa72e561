"""Dynamic batching: concurrent requests wait on one asyncio queue and reach the engine as one batch.

One worker thread owns the engine, so the model is never used by two requests at once. The collector takes
the first waiting request, then gathers more for at most `max_wait_s` or until `max_batch` are in hand
(requests that queued while the previous batch ran are taken at once, without waiting). Requests in a batch
are grouped by generation parameters, one `engine.generate` call per group. If a batch call fails, its requests
are retried one by one so a single bad request cannot fail its neighbours (a stream that has shown text fails
instead: a retry would repeat it). Streaming requests join batches like
plain ones when the engine streams a batch (`generate(..., on_text=...)`: each row's text goes to its stream as it
is generated); with other engines they run alone through `engine.stream`, in their turn in the queue. Work of
clients that left is dropped: queued requests are skipped, and a batch stops once all its clients are gone.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError

log = logging.getLogger("vlmkit.serve")


@dataclass
class BatchStats:
    requests: int = 0
    batches: int = 0
    streams: int = 0
    abandoned: int = 0  # requests whose client left before the answer: skipped in the queue, or stopped
    largest_batch: int = 0
    batch_sizes: dict[int, int] = field(default_factory=dict)  # size -> how many batches had it

    def as_dict(self) -> dict[str, Any]:
        mean = (sum(k * v for k, v in self.batch_sizes.items()) / self.batches) if self.batches else 0.0
        return {
            "requests": self.requests,
            "batches": self.batches,
            "streams": self.streams,
            "abandoned": self.abandoned,
            "largest_batch": self.largest_batch,
            "mean_batch": round(mean, 2),
            "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())},
        }


@dataclass
class _Job:
    sample: Any
    params: Any
    future: asyncio.Future | None = None  # generate(): resolves to a GenerationResult
    pieces: asyncio.Queue | None = None  # stream(): ("piece", text) ... ("done", None) | ("error", exc)
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def abandoned(self) -> bool:
        return self.stop.is_set() or (self.future is not None and self.future.done())


class _AllStopped:
    """The cancel flag of a running batch: set once every request in it has been abandoned."""

    def __init__(self, jobs: list[_Job]):
        self.jobs = jobs

    def is_set(self) -> bool:
        return all(job.stop.is_set() for job in self.jobs)


class DynamicBatcher:
    def __init__(
        self,
        engine: Any,
        *,
        max_batch: int = 8,
        max_wait_s: float = 0.015,
        max_queue: int = 256,
        stream_interval_s: float = 0.02,
    ):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.engine = engine
        self.stream_interval_s = stream_interval_s  # at most one event per stream per interval (tokens coalesce)
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s if max_batch > 1 else 0.0  # nothing to wait for with batches of one
        self.max_queue = max_queue
        self.stats = BatchStats()
        # Engines that take a cancel flag stop a batch whose clients all left (the Engine protocol doesn't require it).
        accepted = inspect.signature(engine.generate).parameters
        self._cancellable = "cancel" in accepted
        # Engines whose generate() streams text per request (on_text) batch streaming requests with the rest;
        # others run each stream alone through engine.stream().
        self._batched_streams = "on_text" in accepted
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the collector on the running event loop (call from inside it, e.g. the app lifespan)."""
        self._ensure_queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vlmkit-engine")
        self._task = asyncio.get_running_loop().create_task(self._collect_forever(), name="vlmkit-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    # --- requests ----------------------------------------------------------------------------
    async def generate(self, sample: Any, params: Any) -> Any:
        job = _Job(sample, params, future=asyncio.get_running_loop().create_future())
        self._enqueue(job)
        try:
            return await job.future
        finally:
            job.stop.set()  # a client that went away leaves its job to be skipped

    def stream(self, sample: Any, params: Any) -> StreamHandle:
        """Queue a streaming request now (a full queue raises at once) and return its handle."""
        job = _Job(sample, params, pieces=asyncio.Queue())
        self._enqueue(job)
        return StreamHandle(job)

    def _enqueue(self, job: _Job) -> None:
        try:
            self._ensure_queue().put_nowait(job)
        except asyncio.QueueFull:
            raise ApiError(
                f"the server is busy ({self.max_queue} requests waiting); retry shortly", status=429, code="server_busy"
            ) from None

    def _ensure_queue(self) -> asyncio.Queue:
        if self._queue is None:
            self._queue = asyncio.Queue(maxsize=self.max_queue)
        return self._queue

    # --- collector ---------------------------------------------------------------------------
    async def _collect_forever(self) -> None:
        while True:
            job = await self._queue.get()
            if job.abandoned:
                self.stats.abandoned += 1
                continue
            if job.pieces is not None and not self._batched_streams:
                await self._run_stream(job)
                continue
            batch, deferred_stream = await self._gather(job)
            try:
                await self._run_batch(batch)
            except Exception as exc:  # a bug here must fail these requests, not stop the collector
                log.exception("batch failed")
                for pending in batch:
                    _fail(pending, exc)
            if deferred_stream is not None:
                await self._run_stream(deferred_stream)

    async def _gather(self, first: _Job) -> tuple[list[_Job], _Job | None]:
        loop = asyncio.get_running_loop()
        batch, deadline = [first], loop.time() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            if job.abandoned:
                self.stats.abandoned += 1
                continue
            if job.pieces is not None and not self._batched_streams:
                return batch, job  # a stream ends the batch and runs right after it, keeping queue order
            batch.append(job)
        return batch, None

    async def _run_batch(self, batch: list[_Job]) -> None:
        self.stats.abandoned += sum(1 for job in batch if job.abandoned)
        batch = [job for job in batch if not job.abandoned]
        if not batch:
            return
        self.stats.batches += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        self.stats.batch_sizes[len(batch)] = self.stats.batch_sizes.get(len(batch), 0) + 1
        groups: dict[str, list[_Job]] = {}
        for job in batch:
            groups.setdefault(repr(job.params), []).append(job)
        loop = asyncio.get_running_loop()
        for jobs in groups.values():
            relay = self._relay(jobs, loop)
            failure: Exception | None = None
            try:
                results = await loop.run_in_executor(self._executor, self._generate, jobs, relay)
            except Exception as exc:
                failure = exc
            if relay is not None:
                relay.flush()  # the last pieces reach their streams before the answers end them
            if failure is not None:  # one by one, but a stream that has shown text would repeat it: it fails
                results = [
                    failure if relay is not None and relay.began(job.pieces) else await self._generate_alone(job)
                    for job in jobs
                ]
            for job, result in zip(jobs, results, strict=True):  # a short answer list must not hang anyone
                self.stats.requests += 1
                self.stats.streams += job.pieces is not None
                if job.abandoned:
                    self.stats.abandoned += 1
                    continue
                _deliver(job, result)

    def _relay(self, jobs: list[_Job], loop: asyncio.AbstractEventLoop) -> _PieceRelay | None:
        if any(job.pieces is not None for job in jobs):
            return _PieceRelay(loop, self.stream_interval_s)
        return None

    def _generate(self, jobs: list[_Job], relay: _PieceRelay | None = None) -> list[Any]:
        samples = [job.sample for job in jobs]
        options: dict[str, Any] = {}
        if self._cancellable:
            options["cancel"] = _AllStopped(jobs)
        if relay is not None:

            def on_text(index: int, text: str) -> None:
                job = jobs[index]
                if job.pieces is not None and not job.stop.is_set():
                    relay.send(job.pieces, text)

            options["on_text"] = on_text
        return self.engine.generate(samples, jobs[0].params, **options)

    async def _generate_alone(self, job: _Job) -> Any:
        loop = asyncio.get_running_loop()
        relay = self._relay([job], loop)
        try:
            return (await loop.run_in_executor(self._executor, self._generate, [job], relay))[0]
        except Exception as exc:
            return exc
        finally:
            if relay is not None:
                relay.flush()

    async def _run_stream(self, job: _Job) -> None:
        self.stats.streams += 1
        self.stats.requests += 1
        loop = asyncio.get_running_loop()

        def send(kind: str, value: Any) -> None:
            loop.call_soon_threadsafe(job.pieces.put_nowait, (kind, value))

        def produce() -> None:
            pieces = None
            if job.stop.is_set():  # the client left while the stream waited for the engine
                send("done", None)
                return
            try:
                pieces = self.engine.stream(job.sample, job.params)
                send("started", None)
                for piece in pieces:
                    if job.stop.is_set():
                        break  # the client went away: stop spending compute on it
                    send("piece", piece)
                send("done", getattr(pieces, "result", None))
            except Exception as exc:
                send("error", exc)
            finally:
                if pieces is not None and hasattr(pieces, "close"):
                    pieces.close()

        await loop.run_in_executor(self._executor, produce)


class _PieceRelay:
    """Carries streamed text from the engine thread to the requests' queues, waking the event loop at most once per
    `interval_s` (the first piece at once).

    Each `call_soon_threadsafe` writes to the loop's wake-up pipe and hands the GIL to the loop, which then writes an
    SSE event per stream; once per row per token, that was the streamed path's largest cost. Pieces sent while a
    flush is pending ride along with it, so a fast engine sends several tokens per event and a slow one (a step
    longer than the interval, as on a GPU with a large model) still sends every token as it comes. A request's
    pieces keep their order; the batcher calls `flush()` on the loop once the engine call returns, before the
    answers end the streams."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval_s: float):
        self.loop, self.interval_s = loop, interval_s
        self.lock = threading.Lock()
        self.pending: list[tuple[asyncio.Queue, str]] = []
        self.scheduled = False
        self.last_flush = float("-inf")
        self.timer: asyncio.TimerHandle | None = None
        self.streams_begun: set[int] = set()  # ids of the queues that got text

    def began(self, pieces: asyncio.Queue | None) -> bool:
        return pieces is not None and id(pieces) in self.streams_begun

    def send(self, pieces: asyncio.Queue, text: str) -> None:
        """Engine thread."""
        with self.lock:
            self.pending.append((pieces, text))
            self.streams_begun.add(id(pieces))
            if self.scheduled:
                return
            self.scheduled = True
        self.loop.call_soon_threadsafe(self._arm)

    def _arm(self) -> None:
        wait = self.last_flush + self.interval_s - self.loop.time()
        if wait <= 0:
            self.flush()
        elif self.timer is None:
            self.timer = self.loop.call_later(wait, self.flush)

    def flush(self) -> None:
        """Event loop: hand every pending piece to its queue."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        with self.lock:
            pending, self.pending, self.scheduled = self.pending, [], False
        self.last_flush = self.loop.time()
        for pieces, text in pending:
            pieces.put_nowait(("piece", text))


def _deliver(job: _Job, result: Any) -> None:
    """Hand a batch's answer (or exception) to its request: a future's result, or a stream's last message."""
    if isinstance(result, BaseException):
        return _fail(job, result)
    if job.future is not None:
        job.future.set_result(result)
    elif getattr(result, "error", None):
        _fail(job, _stream_error(result))
    else:
        job.pieces.put_nowait(("done", result))


def _fail(job: _Job, exc: BaseException) -> None:
    if job.future is not None:
        if not job.future.done():
            job.future.set_exception(exc)
    else:
        job.pieces.put_nowait(("error", exc))


def _stream_error(result: Any) -> Exception:
    """A failed answer of a streamed request as the exception engine.stream() would have raised."""
    from ..errors import VlmkitError
    from ..infer.prompt_limits import CONTEXT_LENGTH_EXCEEDED, PromptTooLong

    if result.error_code == CONTEXT_LENGTH_EXCEEDED:
        return PromptTooLong(result.error)
    return VlmkitError(result.error)


class StreamHandle:
    """Async iterator over one streamed answer's text pieces; `result` is the engine's GenerationResult (token
    counts, finish reason) once the pieces are exhausted. `aclose()` stops generation early."""

    def __init__(self, job: _Job):
        self._job = job
        self._finished = False
        self._early: tuple[str, Any] | None = None
        self.result: Any = None

    def __aiter__(self) -> StreamHandle:
        return self

    async def started(self) -> None:
        """Wait until the engine has accepted the request (prompt encoded, or text arriving) or refused it
        (raises its error), so a refusal still gets a status code."""
        kind, value = await self._job.pieces.get()
        if kind == "error":
            self._finished = True
            self._job.stop.set()
            raise value
        if kind != "started":
            self._early = (kind, value)  # the first piece (or an empty answer's end): __anext__ returns it

    async def __anext__(self) -> str:
        if self._finished:
            raise StopAsyncIteration
        if self._early is not None:
            (kind, value), self._early = self._early, None
        else:
            kind, value = await self._job.pieces.get()
        if kind == "started":
            kind, value = await self._job.pieces.get()
        if kind == "piece":
            # Pieces that arrived while the reader was busy go out as one (fewer events, same text).
            while self._early is None and not self._job.pieces.empty():
                more = self._job.pieces.get_nowait()
                if more[0] != "piece":
                    self._early = more
                    break
                value += more[1]
            return value
        self._finished = True
        self._job.stop.set()
        if kind == "error":
            raise value
        self.result = value
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self._job.stop.set()
