"""Requests passed on at once to an engine whose model runs in another server (`vlmkit serve --engine vllm`).

The in-process engine needs `DynamicBatcher` (one thread owns the model; requests are grouped into batches).
A vLLM server batches continuously by itself, so here each request goes on as soon as it arrives, up to
`max_in_flight` at a time, with at most `max_queue` more waiting (429 beyond), and a stream's pieces are
passed through as vLLM sends them. The engine offers `agenerate` / `astream` (OpenAIEngine); the interface
the app sees is the batcher's: `generate`, `stream` (a handle with `started`, async iteration, `result`,
`aclose`), `stats`, `queue_depth`, `start`, `stop`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..errors import VlmkitError
from .batcher import BatchStats
from .errors import ApiError


class PassThrough:
    def __init__(self, engine: Any, *, max_in_flight: int = 64, max_queue: int = 256):
        self.engine = engine
        self.max_in_flight, self.max_queue = max_in_flight, max_queue
        self.stats = BatchStats()
        self._slots: asyncio.Semaphore | None = None
        self._waiting = 0

    def start(self) -> None:
        self._slots = asyncio.Semaphore(self.max_in_flight)

    async def stop(self) -> None:
        pass

    @property
    def queue_depth(self) -> int:
        return self._waiting

    def _admit(self) -> None:
        if self._waiting >= self.max_queue:
            raise ApiError(
                f"the server is busy ({self.max_queue} requests waiting); retry shortly", status=429, code="server_busy"
            )

    async def _slot(self) -> None:
        if self._slots is None:
            self.start()
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1

    async def generate(self, sample: Any, params: Any) -> Any:
        self._admit()
        await self._slot()
        try:
            self.stats.requests += 1
            return await self.engine.agenerate(sample, params)
        except asyncio.CancelledError:
            self.stats.abandoned += 1
            raise
        finally:
            self._slots.release()

    def stream(self, sample: Any, params: Any) -> PassedStream:
        self._admit()
        self.stats.requests += 1
        self.stats.streams += 1
        return PassedStream(self, sample, params)


class PassedStream:
    """One streamed answer: `await started()` (raises the engine's refusal, so it still gets a status code),
    then `async for piece in stream`; `result` is the GenerationResult at the end."""

    def __init__(self, owner: PassThrough, sample: Any, params: Any):
        self._owner, self._sample, self._params = owner, sample, params
        self._pieces: Any = None
        self._first: str | None = None
        self._holding = False
        self.result: Any = None

    async def started(self) -> None:
        await self._owner._slot()
        self._holding = True
        self._pieces = self._owner.engine.astream(self._sample, self._params)
        try:
            first = await self._pieces.__anext__()
        except StopAsyncIteration:
            first = None
        if isinstance(first, str):
            self._first = first
            return
        self.result = first
        if first is not None and first.error:  # refused before any text: a plain error status
            await self.aclose()
            raise VlmkitError(first.error)

    def __aiter__(self) -> PassedStream:
        return self

    async def __anext__(self) -> str:
        if self._first is not None:
            piece, self._first = self._first, None
            return piece
        if self._pieces is None or self.result is not None:
            raise StopAsyncIteration
        try:
            item = await self._pieces.__anext__()
        except StopAsyncIteration:
            raise StopAsyncIteration from None
        if isinstance(item, str):
            return item
        self.result = item
        raise StopAsyncIteration

    async def aclose(self) -> None:
        if self._pieces is not None:
            pieces, self._pieces = self._pieces, None
            if self.result is None:
                self._owner.stats.abandoned += 1
            await pieces.aclose()
        if self._holding:
            self._holding = False
            self._owner._slots.release()
