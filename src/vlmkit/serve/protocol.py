"""uvicorn's HTTP/1.1 protocol with a deadline for the request line and headers.

uvicorn closes idle keep-alive connections (`timeout_keep_alive`) but waits forever for the headers of a
request that has begun: a slowloris client sending one header byte every few seconds holds a socket and a
slot for as long as it likes. Here each connection gets `header_timeout_s` from its opening (or from the
end of its previous response) to finish its headers, or it is closed. Bodies have their own deadline in
the app's BodyLimit middleware.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


def guarded_protocol(header_timeout_s: float) -> type[H11Protocol]:
    """An H11Protocol class that closes connections whose headers take longer than `header_timeout_s`."""

    class HeaderDeadlineProtocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def handle_events(self) -> None:
            cycle = self.cycle
            super().handle_events()
            if self.cycle is not cycle:  # a request's headers were parsed: a new cycle has begun
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request on this connection gets the same deadline

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.logger.info("closing a connection whose request headers took over %.0f s", header_timeout_s)
                self.transport.close()

    return HeaderDeadlineProtocol
