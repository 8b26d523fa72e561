"""The FastAPI app: OpenAI-compatible chat completions, model list, health, and the web page.

Every error leaves as `{"error": {"message", "type", "code", "param"}}` with a 4xx status (5xx only for our own
bugs, with a generic message; the traceback goes to the server log, never to the client), and the server keeps
serving. Request bodies are capped before FastAPI reads them; media are checked in a worker thread before a
request is queued; the engine runs in the batcher's single thread, or, for a model in another server
(`--engine vllm`), each request is passed on at once (`passthrough`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import VlmkitError
from ..infer.prompt_limits import CONTEXT_LENGTH_EXCEEDED, PromptTooLong
from .batcher import DynamicBatcher, StreamHandle
from .conversation import request_to_params, request_to_sample
from .errors import ApiError, error_body
from .openai_schema import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    ModelCard,
    ModelList,
    Usage,
    new_completion_id,
    now,
)
from .passthrough import PassThrough
from .settings import ServeSettings

log = logging.getLogger("vlmkit.serve")
STATIC_DIR = Path(__file__).parent / "static"
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' data: blob:; "
    "style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
)


def create_app(engine: Any, settings: ServeSettings) -> FastAPI:
    if hasattr(engine, "astream"):  # the model runs in another server that batches by itself (vLLM)
        batcher: Any = PassThrough(engine, max_in_flight=settings.max_batch, max_queue=settings.max_queue)
    else:
        batcher = DynamicBatcher(
            engine, max_batch=settings.max_batch, max_wait_s=settings.batch_wait_ms / 1000, max_queue=settings.max_queue
        )
    created = now()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        yield
        await batcher.stop()

    # No /docs, /redoc or /openapi.json: they would be unauthenticated surface, and the docs page loads from a CDN.
    app = FastAPI(title="vlmkit", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.batcher, app.state.settings = batcher, settings
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    if settings.allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed=settings.allowed_hosts)  # added last: runs first
    _add_error_handlers(app)

    def require_key(request: Request) -> None:
        if settings.api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), settings.api_key.encode()):
            raise ApiError(
                "missing or wrong API key: send 'Authorization: Bearer <key>'", status=401, code="invalid_api_key"
            )

    api = [Depends(require_key)]
    request_problem = getattr(engine, "request_problem", None)  # optional engine check, cheap and load-free
    prompt_limits = getattr(engine, "prompt_limits", None)  # optional: the engine's prompt caps
    app.state.engine_limits = prompt_limits.as_dict() if prompt_limits is not None else {}

    @app.get("/health")
    async def health() -> Any:
        if not getattr(engine, "alive", True):  # the model's own server (vLLM) has exited: not ready, say so
            return JSONResponse({"status": "engine down", "auth_required": settings.api_key is not None}, 503)
        return {"status": "ok", "auth_required": settings.api_key is not None}

    @app.get("/v1/models", dependencies=api)
    async def list_models() -> dict[str, Any]:
        return ModelList(data=[ModelCard(id=settings.model_name, created=created)]).model_dump()

    @app.get("/v1/models/{model_id:path}", dependencies=api)
    async def get_model(model_id: str) -> dict[str, Any]:
        _check_model(model_id, settings)
        return ModelCard(id=settings.model_name, created=created).model_dump()

    @app.get("/v1/stats", dependencies=api)
    async def stats() -> dict[str, Any]:
        return {
            "model": settings.model_name,
            "max_batch": settings.max_batch,
            "queue": batcher.queue_depth,
            **app.state.engine_limits,
            **batcher.stats.as_dict(),
        }

    @app.post("/v1/chat/completions", dependencies=api)
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        _check_model(body.model, settings)
        params = request_to_params(
            body, default_max_tokens=settings.default_max_tokens, max_tokens_cap=settings.max_tokens_cap
        )
        workdir = Path(tempfile.mkdtemp(prefix="vlmkit-request-"))
        try:
            sample = await run_in_threadpool(
                request_to_sample, body, workdir, settings.media, supports_video=engine.family.supports_video
            )
            if prompt_limits is not None:  # before anything tokenizes it
                try:
                    prompt_limits.check_chars(sample)
                except PromptTooLong as exc:
                    raise _prompt_too_long(exc) from None
            problem = request_problem(sample) if request_problem else None
            if problem:  # caught before queueing, so a stream fails with a status code, not mid-stream
                raise ApiError(problem, code="invalid_messages", param="messages")
            if body.stream:
                stream = batcher.stream(sample, params)  # queued now, so a full queue is still a plain 429
                try:  # the engine encodes (and may refuse) the prompt before the status line is sent
                    await _unless_client_leaves(request, stream.started())
                except PromptTooLong as exc:
                    raise _prompt_too_long(exc) from None
                except BaseException:
                    await stream.aclose()
                    raise
                response = StreamingResponse(
                    _sse_events(body, stream, workdir, settings.model_name),
                    media_type="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
                )
                workdir = None  # the stream owns it now
                return response
            result = await _unless_client_leaves(request, batcher.generate(sample, params))
        finally:
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
        if result.error_code == CONTEXT_LENGTH_EXCEEDED:
            raise ApiError(result.error, code=result.error_code, param="messages")
        if result.error:
            raise ApiError(f"generation failed: {result.error}", code="generation_failed")
        return ChatCompletion(
            id=new_completion_id(),
            created=now(),
            model=settings.model_name,
            choices=[Choice(message=AssistantMessage(content=result.text), finish_reason=result.finish_reason)],
            usage=Usage.of(result.prompt_tokens, result.completion_tokens),
        ).model_dump()

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Content-Security-Policy": PAGE_CSP})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


class ClientGone(Exception):
    """The client closed the connection before its answer was ready."""


async def _unless_client_leaves(request: Request, work: Any) -> Any:
    """Await `work`, cancelling it if the client disconnects first (its queued or running job is then
    abandoned: skipped, or its batch stopped when every client in it left)."""
    task = asyncio.ensure_future(work)

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        try:
            await task
        except BaseException:
            pass
        raise ClientGone()
    return task.result()


def _prompt_too_long(exc: PromptTooLong) -> ApiError:
    return ApiError(str(exc), code=exc.code, param="messages")


def _check_model(name: str, settings: ServeSettings) -> None:
    if not settings.accepts_model(name):
        raise ApiError(
            f"model '{name}' is not served here; this server serves '{settings.model_name}'",
            status=404,
            code="model_not_found",
            param="model",
        )


# --- streaming -----------------------------------------------------------------------------------


async def _sse_events(
    body: ChatCompletionRequest, stream: StreamHandle, workdir: Path, model: str
) -> AsyncIterator[str]:
    """OpenAI's chunk sequence: a role chunk, content chunks, a finish chunk, [usage chunk], [DONE]."""
    completion_id, created = new_completion_id(), now()

    with_usage = body.include_usage_in_stream()

    def chunk(delta: Delta | None, finish: str | None = None, usage: Usage | None = None) -> str:
        # As OpenAI sends them: a delta holds only the fields it sets (the finish chunk's delta is {}), and
        # `usage` is present (null until the last chunk) only when the client asked for it.
        choices = [] if delta is None else [ChunkChoice(delta=delta, finish_reason=finish)]
        payload = ChatCompletionChunk(id=completion_id, created=created, model=model, choices=choices, usage=usage)
        data = payload.model_dump(exclude={"usage"} if not with_usage else None)
        for choice in data["choices"]:
            choice["delta"] = {k: v for k, v in choice["delta"].items() if v is not None}
        return f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"

    # Content chunks differ only in their text: built once around a marker, then filled in per piece (a chunk per
    # token per stream made the model build and dump a measurable share of the streamed path's time).
    marker = "\x00vlmkit-piece\x00"
    head, tail = chunk(Delta(content=marker)).split(json.dumps(marker), 1)

    def content_chunk(piece: str) -> str:
        return head + json.dumps(piece, ensure_ascii=False) + tail

    try:
        yield chunk(Delta(role="assistant", content=""))
        async for piece in stream:
            yield content_chunk(piece)
        result = stream.result
        if result is not None and result.error:
            raise ApiError(f"generation failed: {result.error}", code="generation_failed")
        yield chunk(Delta(), "length" if result is not None and result.finish_reason == "length" else "stop")
        if with_usage:
            yield chunk(None, usage=Usage.of(result.prompt_tokens, result.completion_tokens) if result else None)
        yield "data: [DONE]\n\n"
    except Exception as exc:  # the status line is sent already: report in-band, as OpenAI does
        _, payload = _error_response(exc)
        yield f"data: {json.dumps(payload)}\n\n"
    finally:
        await stream.aclose()
        shutil.rmtree(workdir, ignore_errors=True)


# --- errors --------------------------------------------------------------------------------------


def _error_response(exc: BaseException) -> tuple[int, dict]:
    if isinstance(exc, ApiError):
        return exc.status, exc.body()
    if isinstance(exc, VlmkitError):  # e.g. the processor refusing a prompt: the request's fault
        return 400, error_body(str(exc), 400, "invalid_request")
    log.error("internal error while serving a request", exc_info=exc)
    return 500, error_body("internal server error (details are in the server log)", 500, "internal_error")


def _validation_message(exc: RequestValidationError) -> tuple[int, str, str, str | None]:
    """FastAPI's validation errors as OpenAI answers them: 400, the field as `param` in one path style
    (`messages[0].content[0].image_url.url`), and the complaint."""
    errors = exc.errors() or [{"msg": "invalid request", "loc": (), "type": ""}]
    first = errors[0]
    if first.get("type") == "json_invalid":
        reason = first.get("ctx", {}).get("error", first["msg"])
        return 400, f"request body is not valid JSON ({reason})", "invalid_json", None
    if first.get("type") == "missing" and tuple(first.get("loc", ())) == ("body",):
        return 400, "request body is empty; send a JSON object", "invalid_json", None
    # A value that fits no branch of a union gives one error per branch; the branch that got deepest into the
    # value is the one the client meant (a content list with a bad URL is not "not a string").
    located = [(_field_path(exc.body, e), e) for e in errors]
    depth = max(len(path) for path, _ in located)
    deepest = [(path, e) for path, e in located if len(path) == depth]
    field = _path_text(deepest[0][0]) or None
    messages = list(dict.fromkeys(e["msg"].removeprefix("Value error, ") for _, e in deepest))
    message = "; or ".join(messages[:3]) + (f" (and {len(messages) - 3} more problems)" if len(messages) > 3 else "")
    return 400, f"{field}: {message}" if field else message, "invalid_request", field


def _field_path(body: Any, error: dict) -> list[str | int]:
    """The error's location as keys and indexes of the request body, without pydantic's union branch labels
    ('str', 'list[...]', discriminator tags): a step is kept only when the body has it."""
    loc = [x for x in error.get("loc", ()) if x != "body"]
    path: list[str | int] = []
    value = body
    for step, name in enumerate(loc):
        if isinstance(value, dict) and isinstance(name, str) and name in value:
            path.append(name)
            value = value[name]
        elif isinstance(value, list) and isinstance(name, int) and 0 <= name < len(value):
            path.append(name)
            value = value[name]
        elif error.get("type") == "missing" and step == len(loc) - 1 and isinstance(name, str):
            path.append(name)  # a required field the body lacks
    return path


def _path_text(path: list[str | int]) -> str:
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else step)
    return text


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, message, code, field = _validation_message(exc)
        return JSONResponse(error_body(message, status, code, field), status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(str(exc.detail), exc.status_code, code),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(VlmkitError)
    async def ours(request: Request, exc: VlmkitError) -> JSONResponse:
        status, payload = _error_response(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(payload, status_code=status, headers=headers)

    @app.exception_handler(ClientGone)
    async def gone(request: Request, exc: ClientGone) -> JSONResponse:
        log.info("client disconnected before its answer; its work was dropped")
        return JSONResponse(error_body("client closed the request", 499, "client_closed"), status_code=499)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        status, payload = _error_response(exc)
        return JSONResponse(payload, status_code=status)


# --- middleware ----------------------------------------------------------------------------------


class HostCheck:
    """Pure ASGI middleware: answer only requests whose Host header names an allowed host (any port)."""

    def __init__(self, app: Any, allowed: tuple[str, ...]):
        self.app, self.allowed = app, {h.lower().strip("[]") for h in allowed}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1").lower()
            # "name:port", "name", or "[v6 address]:port" (an IPv6 Host header is always bracketed)
            name = host[1 : host.find("]")] if host.startswith("[") else host.split(":", 1)[0]
            if name not in self.allowed:
                response = JSONResponse(
                    error_body(
                        f"host '{host}' is not served here (allowed: "
                        f"{', '.join(sorted(self.allowed))}; see --allowed-host)",
                        400,
                        "host_not_allowed",
                    ),
                    status_code=400,
                )
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


BODY_BUDGET_BODIES = 2  # bodies of the largest allowed size held at once
RELEASE_AFTER_BYTES = 8 * 2**20


class ByteBudget:
    """An asyncio budget of bytes: `acquire(n)` waits until n more fit (one holder may always take it whole)."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self._changed = asyncio.Condition()

    async def acquire(self, size: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.used == 0 or self.used + size <= self.limit)
            self.used += size

    def release(self, size: int) -> None:
        if size:
            self.used -= size
            asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


def release_free_memory() -> None:
    """Give freed heap back to the OS after a large request (glibc keeps it otherwise, and the process stays
    at its peak); a no-op where there is no glibc."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class BodyLimit:
    """Pure ASGI middleware: read the body as it streams in, refusing it (413) once it is over `max_bytes` (by
    its Content-Length at once, else while reading), or (408) when it has not all arrived `timeout_s` after
    the headers; then hand the app one buffer (no second copy of a large body)."""

    def __init__(self, app: Any, max_bytes: int, timeout_s: float = 60.0):
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s
        # Bodies held at once (read, parsed, checked) are bounded too: many large uploads queue for this budget
        # (TCP holds them back) instead of each taking its megabytes, and copies of them, at the same time.
        self.budget = ByteBudget(BODY_BUDGET_BODIES * max_bytes)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await self._refuse(send, int(declared))
        held = 0
        try:
            if declared.isdigit():
                held = int(declared)
                await self.budget.acquire(held)
            await self._read_and_run(scope, receive, send, reserved=declared.isdigit())
        finally:
            self.budget.release(held)

    async def _read_and_run(self, scope: dict, receive: Any, send: Any, *, reserved: bool) -> None:
        body = bytearray()
        extra = 0  # budget taken chunk by chunk when the size was not declared
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        try:
            while True:
                try:
                    message = await asyncio.wait_for(receive(), deadline - asyncio.get_running_loop().time())
                except asyncio.TimeoutError:
                    return await self._too_slow(send, len(body))
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                if len(body) + len(chunk) > self.max_bytes:
                    return await self._refuse(send, len(body) + len(chunk))
                if not reserved and chunk:
                    await self.budget.acquire(len(chunk))
                    extra += len(chunk)
                body += chunk
                if not message.get("more_body"):
                    break
            large = len(body) >= RELEASE_AFTER_BYTES
            box = [bytes(body)]  # the app gets the only reference: parsed, the body can be freed at once
            body.clear()
            await self._run(scope, receive, send, box)
        finally:
            self.budget.release(extra)
        if large:
            release_free_memory()

    async def _run(self, scope: dict, receive: Any, send: Any, box: list[bytes]) -> None:
        async def replay() -> dict:
            if box:
                return {"type": "http.request", "body": box.pop(), "more_body": False}
            return await receive()  # after the body: lets handlers notice a disconnect

        await self.app(scope, replay, send)

    async def _refuse(self, send: Any, size: int) -> None:
        message = f"request body is {size:,} bytes or more, over this server's limit of {self.max_bytes:,}"
        await _close_with(send, 413, message, "request_too_large")

    async def _too_slow(self, send: Any, size: int) -> None:
        message = f"request body not received within {self.timeout_s:g} s ({size:,} bytes arrived)"
        await _close_with(send, 408, message, "request_timeout")


async def _close_with(send: Any, status: int, message: str, code: str) -> None:
    response = JSONResponse(error_body(message, status, code), status_code=status, headers={"Connection": "close"})
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> dict:
    return {"type": "http.disconnect"}
