"""`vlmkit serve` as a user runs it: a real process on 127.0.0.1 and a free port, stopped with Ctrl-C."""

import os
import queue
import signal
import subprocess
import sys
import threading

import httpx
import openai
import pytest


def vlmkit(*args, env=None, **kwargs):
    command = [sys.executable, "-m", "vlmkit", *args]
    return subprocess.Popen(
        command, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )


def first_line_with(stream, needle: str, timeout: float = 180) -> str:
    """The first line of a pipe containing `needle` (read in a thread, so a hung process cannot hang the test)."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in stream], daemon=True).start()
    while True:
        line = lines.get(timeout=timeout)
        if needle in line:
            return line


def test_serve_command_runs_a_keyed_server_and_stops_on_ctrl_c(tiny_model):
    model = tiny_model("qwen2_vl")
    process = vlmkit(
        "serve",
        "--model",
        str(model),
        "--port",
        "0",
        "--max-batch",
        "4",
        "--max-tokens",
        "16",
        env={"VLMKIT_API_KEY": "sesame-123"},
    )
    try:
        line = first_line_with(process.stdout, "serving")
        url = line.split(" on ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:") and f"serving {model.name} on" in line
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="sesame-123", max_retries=0)
        reply = client.chat.completions.create(
            model=model.name, messages=[{"role": "user", "content": "Hi?"}], max_tokens=4, temperature=0
        )
        assert reply.usage.completion_tokens > 0
        assert (
            client.chat.completions.create(
                model=str(model), messages=[{"role": "user", "content": "Hi?"}], max_tokens=4
            ).usage.completion_tokens
            > 0
        )  # the path is an alias
        assert httpx.get(f"{url}/v1/models").status_code == 401
        too_many = httpx.post(
            f"{url}/v1/chat/completions",
            headers={"Authorization": "Bearer sesame-123"},
            json={"model": model.name, "messages": [{"role": "user", "content": "Hi?"}], "max_tokens": 17},
        )
        assert too_many.status_code == 400
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, process.stderr.read()


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["--allow-remote-media", "--trusted-network", "nonsense"], {}, "--trusted-network"),
        (["--trusted-network", "10.0.0.0/8"], {}, "only makes sense with --allow-remote-media"),
        ([], {"VLMKIT_API_KEY": " "}, "--api-key is empty"),
    ],
)
def test_bad_options_are_one_line_errors(args, env, message):
    process = vlmkit("serve", "--model", "some-model", *args, env=env)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2 and stderr.startswith("error: ") and message in stderr
    assert "Traceback" not in stderr


def test_header_and_body_timeouts_are_set_from_the_command_line(tiny_model):
    """--header-timeout / --body-timeout reach the server: a client that stops mid-headers is disconnected, one that
    stops mid-body gets 408 naming the deadline (the defaults, 10 s and 60 s, would outlast the reads below)."""
    import socket

    model = tiny_model("qwen2_vl")
    process = vlmkit("serve", "--model", str(model), "--port", "0", "--header-timeout", "0.5", "--body-timeout", "0.5")
    try:
        url = first_line_with(process.stdout, "serving").split(" on ", 1)[1].split()[0]
        host, port = url.removeprefix("http://").split(":")

        def read_until_closed(sock: socket.socket) -> bytes:
            sock.settimeout(8)  # below both defaults: only the flags can close the connection in time
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            return data

        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and no more headers
            read_until_closed(sock)
        with socket.create_connection((host, int(port))) as sock:
            head = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            sock.sendall(f"{head}Content-Length: 1000\r\n\r\n".encode() + b'{"model": ')
            reply = read_until_closed(sock)
        assert reply.startswith(b"HTTP/1.1 408") and b"not received within 0.5 s" in reply, reply[:300]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
