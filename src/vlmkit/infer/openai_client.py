"""Chat completions against any OpenAI-compatible endpoint, many at a time, with retries: the request core of
`--engine openai`, usable on its own (e.g. to generate data with an API model).

    from vlmkit.infer.openai_client import ChatClient
    client = ChatClient(EndpointSettings(base_url="http://127.0.0.1:8000/v1", concurrency=16), model="gpt-4o")
    for index, completion in client.complete_many([{"messages": [...], "max_tokens": 64}, ...]):
        print(index, completion.text, completion.error)

Built on the official `openai` package's AsyncOpenAI (its own retries off, so that every fault is handled one
way here). Timeouts, connection errors, HTTP 408/409/429/5xx and malformed answers (a 200 whose body is not
a chat completion) are retried with exponential backoff and full jitter, waiting at least what `Retry-After`
asks; any other 4xx, or retries used up, gives a `Completion` with `error` set (the endpoint's message) and the
other requests go on. At most `concurrency` requests are in flight. The API key is read from the environment
variable the settings name, held by the client only, and never appears in a result, an error or a log line.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .options import EndpointSettings

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 429})  # and every 5xx
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
RETRY_AFTER_CAP_S = 120.0
INSTALL_HINT = "the openai engine needs the openai package: pip install 'vlmkit[openai]'"


@dataclass
class Completion:
    """One request's outcome: the answer and the endpoint's own token counts, or `error`."""

    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    system_fingerprint: str | None = None
    model: str | None = None
    latency_s: float = 0.0  # of the successful attempt, or of all attempts when it failed
    attempts: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class _Fault(Exception):
    """A retryable failure of one attempt; `wait` is what the endpoint asked for (Retry-After), if anything."""

    def __init__(self, message: str, wait: float | None = None):
        super().__init__(message)
        self.wait = wait


class _Refusal(Exception):
    """A final failure of one request (a 4xx the endpoint will answer again the same way)."""


def api_key(settings: EndpointSettings) -> str:
    """The key from the environment variable the settings name. Endpoints without auth (vLLM, `vlmkit serve`
    without --api-key) accept any value, so a missing variable sends a placeholder."""
    return os.environ.get(settings.api_key_env) or "no-key"


class ChatClient:
    """Sends chat-completion bodies (`messages`, `max_tokens`, ...) to `settings.base_url` for `model`."""

    def __init__(self, settings: EndpointSettings, *, model: str):
        try:
            import openai  # noqa: F401
        except ImportError:
            raise ConfigError(INSTALL_HINT) from None
        self.settings = settings
        self.model = model
        self._loop: asyncio.AbstractEventLoop | None = None
        self._openai: Any = None
        self._busy = threading.Lock()

    def _client(self) -> Any:
        import httpx
        from openai import AsyncOpenAI

        slots = self.settings.concurrency
        return AsyncOpenAI(
            api_key=api_key(self.settings),
            base_url=self.settings.base_url,
            max_retries=0,  # retried here, one policy for HTTP faults and malformed answers alike
            timeout=self.settings.request_timeout,
            http_client=httpx.AsyncClient(
                limits=httpx.Limits(max_connections=slots, max_keepalive_connections=slots),
                timeout=self.settings.request_timeout,
            ),
        )

    def _session(self) -> tuple[asyncio.AbstractEventLoop, Any]:
        """One event loop and one AsyncOpenAI client for the client's life, so connections (and the TLS
        set-up) are reused from one call of `complete_many` to the next."""
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
            self._openai = self._client()
            self._finalizer = weakref.finalize(self, _shut, self._loop, self._openai)
        return self._loop, self._openai

    def close(self) -> None:
        """Close the connections (also done when the client is garbage collected or at exit)."""
        if self._loop is not None:
            self._finalizer()
            self._loop = None

    # --- many requests, from synchronous code ---------------------------------------------------------
    def complete_many(self, bodies: Sequence[Mapping[str, Any] | Any]) -> Iterator[tuple[int, Completion]]:
        """(index, Completion) for every body, in the order they finish, at most `concurrency` in flight.

        A body may also be a zero-argument callable returning the body: it is called just before its request
        is sent, so large payloads (base64 images) are built only as needed.
        Closing the iterator early cancels what is still running. One call at a time per client.
        """
        with self._busy:
            loop, client = self._session()
            done: asyncio.Queue[tuple[int, Completion]] = asyncio.Queue()
            gate = asyncio.Semaphore(self.settings.concurrency)

            async def one(index: int, body: Any) -> None:
                async with gate:
                    result = await self._complete(client, body)
                await done.put((index, result))

            tasks = [loop.create_task(one(i, body)) for i, body in enumerate(bodies)]
            try:
                for _ in range(len(tasks)):
                    yield loop.run_until_complete(done.get())
            finally:
                for task in tasks:
                    task.cancel()
                if tasks:
                    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))

    def complete(self, body: Mapping[str, Any]) -> Completion:
        """One request (with retries), from synchronous code."""
        return next(iter(self.complete_many([body])))[1]

    def _scrub(self, message: str) -> str:
        """An endpoint may echo the key in an error (401 "Incorrect API key: sk-..."); it is never kept."""
        key = api_key(self.settings)
        return message.replace(key, "[api key]") if len(key) >= 8 else message

    # --- one request -------------------------------------------------------------------------------
    async def _complete(self, client: Any, body: Any) -> Completion:
        started = time.perf_counter()
        attempts = 0
        try:
            if callable(body):  # built here, inline: a thread hop costs more than encoding an image
                body = body()
        except Exception as exc:  # the request could not be built (unreadable image): that sample fails alone
            return Completion(error=f"{type(exc).__name__}: {exc}", latency_s=time.perf_counter() - started)
        last = ""
        while True:
            attempts += 1
            sent = time.perf_counter()
            try:
                result = await self._attempt(client, body)
                result.latency_s, result.attempts = time.perf_counter() - sent, attempts
                return result
            except _Refusal as exc:
                return Completion(
                    error=self._scrub(str(exc)), attempts=attempts, latency_s=time.perf_counter() - started
                )
            except _Fault as exc:
                last = self._scrub(str(exc))
                if attempts > self.settings.max_retries:
                    return Completion(
                        error=f"{last} (gave up after {attempts} attempts)",
                        attempts=attempts,
                        latency_s=time.perf_counter() - started,
                    )
                delay = backoff_delay(attempts, exc.wait)
                log.info("request failed (%s); retry %d in %.2f s", last, attempts, delay)
                await asyncio.sleep(delay)

    async def _attempt(self, client: Any, body: Mapping[str, Any]) -> Completion:
        import httpx

        try:
            # the body as built (no client-side re-validation of every message part: it costs milliseconds
            # per request with images, and the endpoint validates anyway); the raw response is parsed here
            response = await client.post(
                "/chat/completions", body={"model": self.model, **body}, cast_to=httpx.Response
            )
        except Exception as exc:
            raise self._classified(exc) from None
        return parse_completion(response.text)

    def _classified(self, exc: Exception) -> Exception:
        """An openai exception as a retryable _Fault or a final _Refusal (anything else as it is)."""
        import openai

        if isinstance(exc, openai.APITimeoutError):
            return _Fault(f"no answer within {self.settings.request_timeout:g} s")
        if isinstance(exc, openai.APIConnectionError):
            return _Fault(f"connection failed: {_reason(exc)}")
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            message = f"HTTP {status}: {_endpoint_message(exc)}"
            if status in RETRY_STATUS or status >= 500:
                return _Fault(message, retry_after(exc.response.headers))
            return _Refusal(message)
        return exc

    # --- from a running event loop (a server passing requests on) --------------------------------------
    def _loop_client(self) -> Any:
        """An AsyncOpenAI client of the running event loop (one per loop, made on first use)."""
        loop = asyncio.get_running_loop()
        clients = self.__dict__.setdefault("_loop_clients", weakref.WeakKeyDictionary())
        if loop not in clients:
            clients[loop] = self._client()
        return clients[loop]

    async def acomplete(self, body: Mapping[str, Any]) -> Completion:
        """One request (with retries) from async code; many may run at once (no concurrency bound here)."""
        return await self._complete(self._loop_client(), body)

    async def astream(self, body: Mapping[str, Any]) -> AsyncIterator[str | Completion]:
        """One request streamed: its text pieces as they arrive, then its Completion (token counts, finish
        reason, or `error`). Faults are retried until the first piece; after that a fault ends the stream with
        an error (the pieces already sent cannot be taken back)."""
        client = self._loop_client()
        started = time.perf_counter()
        attempts, text, finish, usage = 0, [], None, None
        extra = {k: v for k, v in body.items() if k != "messages"}
        while True:
            attempts += 1
            try:
                stream = await client.chat.completions.create(
                    model=self.model,
                    messages=body["messages"],
                    stream=True,
                    stream_options={"include_usage": True},
                    extra_body=extra,
                )
                async with stream:  # closed (the request abandoned) however the reader stops
                    async for chunk in stream:
                        usage = chunk.usage or usage
                        for choice in chunk.choices or []:
                            finish = choice.finish_reason or finish
                            if choice.delta and choice.delta.content:
                                text.append(choice.delta.content)
                                yield choice.delta.content
                break
            except Exception as exc:
                problem = self._classified(exc)
                if isinstance(problem, _Fault) and not text and attempts <= self.settings.max_retries:
                    await asyncio.sleep(backoff_delay(attempts, problem.wait))
                    continue
                if not isinstance(problem, (_Fault, _Refusal)):
                    raise
                yield Completion(
                    text="".join(text),
                    error=self._scrub(str(problem)),
                    attempts=attempts,
                    latency_s=time.perf_counter() - started,
                )
                return
        yield Completion(
            text="".join(text),
            finish_reason=finish,
            prompt_tokens=_count(getattr(usage, "prompt_tokens", None)),
            completion_tokens=_count(getattr(usage, "completion_tokens", None)),
            attempts=attempts,
            latency_s=time.perf_counter() - started,
        )


def _shut(loop: asyncio.AbstractEventLoop, client: Any) -> None:
    if loop.is_closed():
        return
    try:
        loop.run_until_complete(client.close())
    except Exception:  # at exit a half-torn-down interpreter may refuse; the OS closes the sockets
        pass
    loop.close()


def parse_completion(text: str) -> Completion:
    """A chat-completion body -> Completion; anything else is a retryable fault (a proxy's HTML error page,
    a truncated body, a 200 without choices)."""
    try:
        body = json.loads(text)
    except ValueError:
        raise _Fault(f"malformed answer (not JSON): {text[:80]!r}") from None
    try:
        choice = body["choices"][0]
        content = choice["message"].get("content")
        if content is not None and not isinstance(content, str):
            raise TypeError("content is not a string")
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise _Fault(f"malformed answer (no choices[0].message.content: {exc})") from None
    usage = body.get("usage") or {}
    return Completion(
        text=content or "",
        finish_reason=choice.get("finish_reason"),
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
        system_fingerprint=body.get("system_fingerprint"),
        model=body.get("model"),
    )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the endpoint asks us to wait: `retry-after-ms`, or `Retry-After` (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - time.time())


def backoff_delay(attempt: int, asked: float | None = None) -> float:
    """Full-jitter exponential backoff (0.5 s, 1 s, 2 s ... capped at 30 s), but never less than Retry-After."""
    delay = random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)))
    if asked is not None:
        delay = max(delay, min(asked, RETRY_AFTER_CAP_S))
    return delay


def _endpoint_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if message:
            return str(message)[:500]
    return str(getattr(exc, "message", exc))[:500]


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return f"{type(cause).__name__}: {cause}" if cause else str(exc)
