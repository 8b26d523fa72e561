"""Work of clients that left is dropped: queued requests are skipped, a batch whose clients all left stops, and
connections that send nothing (or headers and bodies too slowly) are closed."""

from __future__ import annotations

import socket
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


@pytest.fixture(scope="module")
def impatient_server(engine):
    srv = start_server(engine, header_timeout_s=0.5, body_timeout_s=0.5, keep_alive_s=0.5)
    yield srv
    srv.__exit__()


def read_until_closed(sock: socket.socket, limit_s: float = 20.0) -> bytes:
    """Everything the server sends until it closes the connection (fails if it never does)."""
    sock.settimeout(limit_s)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def connect(srv) -> socket.socket:
    host, port = srv.sock.getsockname()[:2]
    return socket.create_connection((host, port), timeout=20)


@pytest.mark.parametrize(
    "sent",
    [b"", b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl"],
    ids=["nothing", "half the headers"],
)
def test_connections_whose_headers_do_not_arrive_in_time_are_closed(impatient_server, sent):
    with connect(impatient_server) as sock:
        sock.sendall(sent)
        assert read_until_closed(sock) == b""
    assert httpx.get(f"{impatient_server.url}/health").status_code == 200


def test_a_slow_body_gets_408_and_the_connection_closes(impatient_server):
    with connect(impatient_server) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"model": '
        )
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408") and b"request_timeout" in answer


def test_idle_keep_alive_connections_are_closed(impatient_server):
    with connect(impatient_server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = read_until_closed(sock)  # served, then closed once idle
    assert answer.startswith(b"HTTP/1.1 200") and b'"status":"ok"' in answer


def test_slow_headers_of_a_second_request_on_a_kept_alive_connection_are_cut_too(impatient_server):
    with connect(impatient_server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        sock.settimeout(20)
        first = b""
        while not first.endswith(b"}"):  # the whole first response: headers, then the JSON body
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        for byte in b"GET /health HTTP/1.1\r\n":  # one byte every 0.2 s: never idle, never finished
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.2)
        assert read_until_closed(sock) == b""


def test_large_bodies_wait_for_the_byte_budget_instead_of_all_being_held_at_once():
    import asyncio

    from vlmkit.serve.app import ByteBudget

    async def scenario():
        budget = ByteBudget(100)
        order = []

        async def hold(name, size, seconds):
            await budget.acquire(size)
            order.append(f"{name} in")
            await asyncio.sleep(seconds)
            order.append(f"{name} out")
            budget.release(size)

        await asyncio.gather(hold("a", 60, 0.05), hold("b", 60, 0), hold("c", 30, 0), hold("huge", 500, 0))
        return order, budget.used

    order, used = asyncio.run(scenario())
    assert used == 0
    assert order.index("b in") > order.index("a out")  # 60 + 60 > 100: b waited for a
    assert order.index("c in") < order.index("a out")  # 60 + 30 fit together
    assert "huge in" in order  # larger than the whole budget: runs alone, never starves
