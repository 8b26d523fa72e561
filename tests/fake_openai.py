"""A small OpenAI-compatible chat-completions server on 127.0.0.1 that misbehaves on request, for tests and
benchmarks of anything that talks to an endpoint (the openai engine, data augmentation, launcher tests).

    with FakeOpenAI(faults={"q3": ["429", "ok"], "q7": ["hang", "ok"]}, latency=0.01) as server:
        ... base_url=server.url ...
        server.max_in_flight, server.attempts["q3"], server.bodies, server.headers (names lower case)

Each request's key is the text of its last user message (its question). The answer is `answer(body)`, by
default "echo: <key>", so a test can check that every answer landed on its own sample. `faults[key]` is the
list of what successive attempts for that key get ("ok" once the list is used up):

    "429"     429 with Retry-After: 0.05 (rate limited)        "500" / "503"  server errors
    "hang"    no answer for `hang_s` seconds (past a timeout)   "broken"       200 with a body that is not JSON
    "400"     a permanent 400 with an OpenAI-style error body   "empty"        200 JSON without choices
    "401"     401 quoting the key it was sent (as some APIs do)

A request with `"stream": true` gets the answer as server-sent events, one chunk per word (and a usage chunk
when `stream_options.include_usage` asks). GET /health and /version answer as vLLM's server does. `port`
picks the port (default: any free one); `models` (when given) are the only model ids accepted (404 otherwise).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return " ".join(p.get("text", "") for p in content or [] if p.get("type") == "text")
    return ""


def echo(body: dict[str, Any]) -> str:
    return f"echo: {last_user_text(body)}"


class FakeOpenAI:
    def __init__(
        self,
        *,
        faults: dict[str, list[str]] | None = None,
        answer: Callable[[dict[str, Any]], str] = echo,
        latency: float = 0.0,
        latency_for: Callable[[str], float] | None = None,
        hang_s: float = 5.0,
        retry_after: str = "0.05",
        model: str = "fake-model",
        system_fingerprint: str | None = "fp_fake_1",
        usage: Callable[[dict[str, Any], str], tuple[int, int]] | None = None,
        port: int = 0,
        models: tuple[str, ...] | None = None,
        version: str = "0.0.0+fake",
    ):
        self.port, self.models, self.version = port, models, version
        self.faults = {k: list(v) for k, v in (faults or {}).items()}
        self.answer, self.latency, self.latency_for, self.hang_s = answer, latency, latency_for, hang_s
        self.retry_after, self.model, self.system_fingerprint = retry_after, model, system_fingerprint
        self.usage = usage or (lambda body, text: (len(json.dumps(body["messages"])) // 4, len(text.split())))
        self.attempts: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.server_seconds: list[float] = []  # time spent inside each handled request
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> FakeOpenAI:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _Server(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    # --- behaviour -------------------------------------------------------------------------------
    def next_action(self, key: str) -> str:
        with self._lock:
            self.attempts[key] += 1
            plan = self.faults.get(key)
            return plan.pop(0) if plan else "ok"

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        text = self.answer(body)
        prompt_tokens, completion_tokens = self.usage(body, text)
        reply = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        if self.system_fingerprint:
            reply["system_fingerprint"] = self.system_fingerprint
        return reply


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the stdlib's 5 resets connections when dozens of clients connect at once


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAI
    protocol_version = "HTTP/1.1"  # keep-alive, as real endpoints
    disable_nagle_algorithm = True  # headers and body leave at once (no 40 ms delayed-ACK stall per answer)

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, payload: bytes, content_type: str = "application/json", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status: int, message: str, **headers: str) -> None:
        body = {"error": {"message": message, "type": "invalid_request_error", "code": str(status)}}
        self._send(status, json.dumps(body).encode(), **headers)

    def do_GET(self) -> None:  # /v1/models, /health, /version
        if self.path == "/health":
            return self._send(200, b"")
        if self.path == "/version":
            return self._send(200, json.dumps({"version": self.fake.version}).encode())
        names = self.fake.models or (self.fake.model,)
        self._send(200, json.dumps({"object": "list", "data": [{"id": n, "object": "model"} for n in names]}).encode())

    def _stream(self, completion: dict[str, Any], include_usage: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        text = completion["choices"][0]["message"]["content"]
        words = text.split(" ")
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        base = {k: completion[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
        events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
        events += [{**base, "choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if include_usage:
            events.append({**base, "choices": [], "usage": completion["usage"]})
        for event in [*(f"data: {json.dumps(e)}\n\n" for e in events), "data: [DONE]\n\n"]:
            data = event.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def do_POST(self) -> None:
        fake = self.fake
        started = time.perf_counter()
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        key = last_user_text(body)
        with fake._lock:
            fake.bodies.append(body)
            fake.headers.append({k.lower(): v for k, v in self.headers.items()})
            fake.in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            action = fake.next_action(key)
            delay = fake.latency_for(key) if fake.latency_for else fake.latency
            if delay:
                time.sleep(delay)
            if fake.models is not None and body.get("model") not in fake.models:
                self._error(404, f"The model `{body.get('model')}` does not exist.")
            elif action == "ok" and body.get("stream"):
                self._stream(fake.completion(body), bool((body.get("stream_options") or {}).get("include_usage")))
            elif action == "ok":
                self._send(200, json.dumps(fake.completion(body)).encode())
            elif action == "429":
                self._error(429, "Rate limit reached, slow down", Retry_After=fake.retry_after)
            elif action in ("500", "503", "502"):
                self._error(int(action), "The server had an error while processing your request")
            elif action == "401":  # as some APIs do: the rejected key quoted back in the message
                self._error(401, f"Incorrect API key provided: {self.headers.get('Authorization', '')[7:]}")
            elif action == "400":
                self._error(400, f"Invalid content for '{key}': this request will never work")
            elif action == "broken":
                self._send(200, b'{"id": "chatcmpl-fake", "choices": [{"mess', "application/json")
            elif action == "empty":
                self._send(200, json.dumps({"id": "x", "choices": []}).encode())
            elif action == "hang":
                time.sleep(fake.hang_s)
                self._send(200, json.dumps(fake.completion(body)).encode())
            else:
                raise ValueError(f"unknown fault '{action}'")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout): as a real server, carry on
        finally:
            with fake._lock:
                fake.in_flight -= 1
                fake.server_seconds.append(time.perf_counter() - started)
