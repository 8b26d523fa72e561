"""Run the app with uvicorn: `serve()` behind the CLI verb, and `ServerThread` for tests and benchmarks.

Both bind the listening socket themselves, so port 0 means "any free port" and the real address is known
before the first request (no probing for a free port, no race).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from .app import create_app
from .settings import LOOPBACK_HOSTS, ServeSettings

log = logging.getLogger("vlmkit.serve")


def bind_socket(host: str, port: int) -> socket.socket:
    from ..errors import VlmkitError

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        sock = socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise VlmkitError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(
    engine: Any,
    settings: ServeSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    announce: Any = print,
) -> None:
    """Serve until interrupted. `announce` gets the one line with the address (the CLI prints it)."""
    import uvicorn

    if host not in LOOPBACK_HOSTS and settings.api_key is None:
        log.warning("listening on %s without --api-key: anyone who can reach this address can use the model", host)
    sock = bind_socket(host, port)
    app = create_app(engine, settings)
    config = uvicorn_config(app, settings, log_level=log_level, timeout_graceful_shutdown=5)
    announce(f"serving {settings.model_name} on {url_of(sock)} (web page at /, API at /v1)")
    uvicorn.Server(config).run(sockets=[sock])


def uvicorn_config(app: Any, settings: ServeSettings, **options: Any) -> Any:
    """uvicorn's settings for our app: h11 with the header deadline, the keep-alive timeout, no Server header."""
    import uvicorn

    from .protocol import guarded_protocol

    return uvicorn.Config(
        app,
        http=guarded_protocol(settings.header_timeout_s),
        timeout_keep_alive=settings.keep_alive_s,
        server_header=False,
        **options,
    )


class ServerThread:
    """The real server in a background thread on 127.0.0.1 and a free port: `with ServerThread(e, s) as srv:`."""

    def __init__(self, engine: Any, settings: ServeSettings, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self.sock = bind_socket(host, port)
        self.url = url_of(self.sock)
        self.app = create_app(engine, settings)
        self.server = uvicorn.Server(
            uvicorn_config(self.app, settings, log_level="warning", timeout_graceful_shutdown=2)
        )
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()
