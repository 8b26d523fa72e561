"""Work of clients that left is dropped: queued requests are skipped, a batch whose clients all left stops, and
connections that send nothing (or headers and bodies too slowly) are closed."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from serve_helpers import MODEL, ask, start_server

from vlmkit.data.schema import Sample
from vlmkit.infer import GenerationParams

CHAT = {"model": MODEL, "temperature": 0, "max_tokens": 8, "messages": [ask("What is it?")]}


def stats(srv) -> dict:
    return httpx.get(f"{srv.url}/v1/stats").json()


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def post_and_hang_up(srv, body: dict) -> None:
    """Send a request and close the connection before the answer comes."""
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{srv.url}/v1/chat/completions", json=body, timeout=httpx.Timeout(30, read=0.5))


def test_a_cancel_flag_stops_a_batch_at_the_next_token(engine):
    flag = threading.Event()
    flag.set()
    sample = Sample(id="a", messages=[ask("Tell me a long story.")])
    stopped = engine.generate([sample, sample], GenerationParams(max_new_tokens=48), cancel=flag)
    full = engine.generate([sample], GenerationParams(max_new_tokens=48))[0]
    assert all(r.completion_tokens <= 1 for r in stopped) and full.completion_tokens > 1


def test_requests_of_clients_that_left_are_dropped_and_the_next_client_is_served(engine):
    srv = start_server(engine, max_batch=1, batch_wait_ms=0)
    try:
        with engine._lock:  # the engine is busy: what follows waits for it, as behind a long batch
            busy = threading.Thread(target=post_and_hang_up, args=(srv, CHAT))  # its batch runs, then stops
            busy.start()
            wait_for(lambda: stats(srv)["batches"] == 1, "the first batch to start")
            post_and_hang_up(srv, CHAT | {"max_tokens": 16})  # queued behind it, then abandoned
            busy.join()
            before = stats(srv)
            assert before["abandoned"] == 0  # nothing was run yet
        wait_for(lambda: stats(srv)["abandoned"] == 2, "both abandoned requests to be dropped")
        good = httpx.post(f"{srv.url}/v1/chat/completions", json=CHAT, timeout=60)
        assert good.status_code == 200 and good.json()["usage"]["completion_tokens"] > 0
        after = stats(srv)
        assert after["batches"] == 2  # the abandoned queued request never reached the engine
    finally:
        srv.__exit__()


def test_a_stream_whose_client_left_while_queued_never_starts(engine):
    srv = start_server(engine, max_batch=1, batch_wait_ms=0)
    try:
        with engine._lock:
            busy = threading.Thread(target=post_and_hang_up, args=(srv, CHAT))
            busy.start()
            wait_for(lambda: stats(srv)["batches"] == 1, "the first batch to start")
            post_and_hang_up(srv, CHAT | {"stream": True})
            busy.join()
        wait_for(lambda: stats(srv)["abandoned"] >= 1, "the first request to be dropped")
        good = httpx.post(f"{srv.url}/v1/chat/completions", json=CHAT, timeout=60)
        assert good.status_code == 200
    finally:
        srv.__exit__()
