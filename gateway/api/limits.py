"""Per-sender rate and byte limits, and slowing down failed authentication.

Both are in-process token buckets: with several ``api`` processes each process counts on
its own, so a sender gets up to N times its limit across N processes (a limit shared
across processes needs a shared counter, e.g. at the TLS-terminating proxy; see
docs/security.md).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.problems import from_error
from gateway.errors import RateLimited
from gateway.routing.policies import RateLimit
from gateway.telemetry.logs import fields
from gateway.telemetry.metrics import AUTH_FAILURES

log = logging.getLogger("xoev_gateway.api")


@dataclass
class _Bucket:
    """``capacity`` tokens, refilled at ``capacity / window`` per second; may go into debt
    (a body's size is known only once it was read), and then refuses until paid back."""

    capacity: float
    window: float
    tokens: float
    at: float

    def refill(self, now: float) -> None:
        rate = self.capacity / self.window
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * rate)
        self.at = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` tokens are there (0: now)."""
        missing = min(amount, self.capacity) - self.tokens
        return 0.0 if missing <= 0 else missing * self.window / self.capacity


class SenderLimits:
    """The buckets of every sender; a changed limit (config reload) starts afresh."""

    MAX_SENDERS = 100_000

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str, RateLimit], _Bucket] = {}

    def _bucket(self, sender: str, kind: str, limit: RateLimit, now: float) -> _Bucket | None:
        capacity = limit.requests if kind == "requests" else limit.bytes
        if capacity is None:
            return None
        key = (sender, kind, limit)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.MAX_SENDERS:
                self._buckets.clear()
            bucket = self._buckets[key] = _Bucket(capacity, limit.window_seconds, capacity, now)
        bucket.refill(now)
        return bucket

    def admit(self, sender: str, limit: RateLimit, declared_bytes: int | None) -> None:
        """Take one request; refuse if the request or (declared) byte budget is spent."""
        now = time.monotonic()
        requests = self._bucket(sender, "requests", limit, now)
        volume = self._bucket(sender, "bytes", limit, now)
        if requests is not None and (wait := requests.wait_for(1)) > 0:
            raise RateLimited(
                f"sender '{sender}' is over its limit of {limit.requests} requests per "
                f"{limit.window_seconds:g} s",
                wait,
            )
        if volume is not None and (wait := volume.wait_for(max(declared_bytes or 0, 1))) > 0:
            raise RateLimited(
                f"sender '{sender}' is over its limit of {limit.bytes} bytes per "
                f"{limit.window_seconds:g} s",
                wait,
            )
        if requests is not None:
            requests.tokens -= 1

    def charge_bytes(self, sender: str, limit: RateLimit, size: int) -> None:
        volume = self._bucket(sender, "bytes", limit, time.monotonic())
        if volume is not None:
            volume.tokens -= size


class AuthFailureThrottle:
    """ASGI middleware: a client address with ``per_minute`` failed authentications (401)
    within the last minute gets 429 with ``Retry-After`` until the oldest one is a minute
    old; guessing tokens then costs a minute per ``per_minute`` tries. The address is the
    connection's, or the forwarded one when the proxy is trusted (``forwarded_allow_ips``).
    """

    WINDOW = 60.0
    MAX_ADDRESSES = 100_000

    def __init__(self, app: ASGIApp, per_minute: int) -> None:
        self.app = app
        self.per_minute = per_minute
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str, now: float) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.WINDOW:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        now = time.monotonic()
        failures = self._recent(address, now)
        if failures is not None and len(failures) >= self.per_minute:
            error = RateLimited(
                "too many failed authentications from this address; wait before trying again",
                failures[0] + self.WINDOW - now,
            )
            await from_error(error)(scope, receive, send)
            return

        async def watching_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                if len(self._failures) >= self.MAX_ADDRESSES:
                    self._failures.clear()
                failed = self._failures.setdefault(address, deque(maxlen=self.per_minute))
                failed.append(time.monotonic())
                AUTH_FAILURES.inc()
                # Never the credentials: which request failed, from where.
                log.warning(
                    "authentication failed",
                    extra=fields(
                        event="auth.failed",
                        client=address,
                        method=scope.get("method"),
                        path=scope.get("path"),
                    ),
                )
                if len(failed) == self.per_minute:
                    # Once per address and window: the refused requests that follow (429)
                    # are not logged one by one, so guessing cannot flood the log.
                    log.warning(
                        "authentication throttled for a minute",
                        extra=fields(event="auth.throttled", client=address),
                    )
            await send(message)

        await self.app(scope, receive, watching_send)
