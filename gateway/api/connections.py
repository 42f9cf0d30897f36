"""Slow clients: read timeouts for request headers and bodies, and a connection cap.

uvicorn has a keep-alive timeout but none for reading a request: a connection that sends
its headers (or its body) a byte at a time is held as long as it likes. 200 such
connections were held for 60 s and more. uvicorn's own ``limit_concurrency`` answers 503
as plain text and counts those connections against honest ones. So the server runs
uvicorn's httptools protocol with this small subclass (passed as ``http=``), the one
place that knows uvicorn's protocol internals:

- the request line and headers must be complete within ``header_timeout`` seconds of the
  connection being made (or of the first byte of the next request on a kept-alive
  connection; the idle time before it is uvicorn's ``timeout_keep_alive``), and may hold
  at most ``max_header_bytes``;
- the body must arrive within ``body_timeout`` seconds, extended by one second for every
  ``body_min_rate`` bytes received (the scheme of Apache's mod_reqtimeout
  ``body=20,MinRate=500``), so that a large upload at an honest pace goes through while
  a trickle is cut; time in which the application does not read (flow control paused)
  does not count against the client;
- above ``max_connections`` open connections, a request is answered 503 problem+json and
  its connection closed.

A connection that runs out of time is closed without an answer: whatever it sent so far
is not a request the gateway can act on. ``tests/faults/test_slow_clients.py`` measures
it over real sockets, and fails if the guard is not in use.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.api.problems import PROBLEM_JSON
from gateway.errors import Unavailable

log = logging.getLogger("xoev_gateway.api")


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024
    body_timeout: float = 20.0
    body_min_rate: int = 500
    max_connections: int = 1000


class HeaderTooLarge(Exception):
    """Raised inside the parser; uvicorn answers it as an invalid request (400, closed)."""


def _over_capacity(limit: int) -> Any:
    error = Unavailable(f"the server holds more than {limit} connections; retry later")
    body = json.dumps(
        {"type": error.type_uri, "title": error.title, "status": 503, "detail": error.detail}
    ).encode()

    async def refuse(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", b"5"),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return refuse


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the read timeouts and the cap of the module."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    cut: ClassVar[int] = 0
    """Connections closed for being too slow (this process)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._body_started = 0.0
        self._body_bytes = 0
        self._refuse = _over_capacity(self.limits.max_connections)

    # Headers
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.header_timeout, self._headers_late)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        if self._timer is None:  # the next request on a kept-alive connection
            self._arm(self.limits.header_timeout, self._headers_late)

    def on_url(self, url: bytes) -> None:
        self._count_header(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header(len(name) + len(value))
        super().on_header(name, value)

    def _count_header(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.limits.max_header_bytes:
            raise HeaderTooLarge(f"request headers exceed {self.limits.max_header_bytes} bytes")

    def on_headers_complete(self) -> None:
        self._cancel()
        app = self.app
        if len(self.connections) > self.limits.max_connections:
            self.app = self._refuse  # for this request only: the cycle takes it now
        try:
            super().on_headers_complete()
        finally:
            self.app = app
        self._body_started = self.loop.time()
        self._body_bytes = 0
        self._arm(self.limits.body_timeout, self._body_late)

    def _headers_late(self) -> None:
        self._timer = None
        self._close("request headers", self.limits.header_timeout)

    # Body
    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._cancel()
        super().on_message_complete()

    def _body_late(self) -> None:
        self._timer = None
        now = self.loop.time()
        deadline = self._deadline()
        if now < deadline:
            self._arm(deadline - now, self._body_late)
        elif self.flow is not None and self.flow.read_paused:
            # The application is not reading: not the client's delay. Start over.
            self._body_started = now
            self._arm(self.limits.body_timeout, self._body_late)
        else:
            self._close("the request body", self._deadline() - self._body_started)

    def _deadline(self) -> float:
        limits = self.limits
        return self._body_started + limits.body_timeout + self._body_bytes / limits.body_min_rate

    # Timer
    def _arm(self, delay: float, callback: Any) -> None:
        self._cancel()
        self._timer = self.loop.call_later(delay, callback)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _close(self, what: str, seconds: float) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        type(self).cut += 1
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        log.info("closed %s's connection: %s not received within %.0f s", client, what, seconds)
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)


def guarded_protocol(
    limits: ConnectionLimits, base: type[HttpToolsProtocol] = HttpToolsProtocol
) -> type[GuardedHttpToolsProtocol]:
    """The protocol class to pass to uvicorn as ``http=``, with these limits, on top of
    ``base`` (another subclass of uvicorn's protocol, e.g. the TLS one)."""
    bases = (
        (GuardedHttpToolsProtocol,)
        if base is HttpToolsProtocol
        else (
            GuardedHttpToolsProtocol,
            base,
        )
    )
    return type("GuardedHttpToolsProtocol", bases, {"limits": limits})
