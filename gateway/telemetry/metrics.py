"""The Prometheus series every gateway process exports (docs/operations.md).

Counters and histograms are incremented where things happen (a few hundred nanoseconds
each); the queue gauges are set on scrape from one indexed query of the store, cached for
:data:`SCRAPE_CACHE_SECONDS` (:class:`ScrapedState`). ``deploy/grafana`` and
``deploy/prometheus`` use these names; ``tests/observability`` checks they exist.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

SUBMISSIONS_ACCEPTED = Counter(
    "xoev_gateway_submissions_accepted",
    "Submissions accepted (stored, deliveries queued), by source and service (message type)",
    ["source", "service"],
)
SUBMISSIONS_REJECTED = Counter(
    "xoev_gateway_submissions_rejected",
    "Submissions refused with a problem, by source and problem type",
    ["source", "problem"],
)
DELIVERIES = Counter(
    "xoev_gateway_deliveries",
    "Delivery attempts settled, by destination and outcome (delivered, retry, dead)",
    ["destination", "outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "xoev_gateway_delivery_attempt_seconds",
    "Duration of one adapter call (deliver), by adapter",
    ["adapter"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
INTAKE_SECONDS = Histogram(
    "xoev_gateway_intake_seconds",
    "Duration of the accept path (validate, route, store) of one submission, by source",
    ["source"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
AUTH_FAILURES = Counter(
    "xoev_gateway_auth_failures", "Requests refused for missing or invalid credentials"
)
CONFIG_RELOADS = Counter(
    "xoev_gateway_config_reloads",
    "Configuration reloads, by outcome (loaded, refused)",
    ["outcome"],
)
CONFIG_INFO = Gauge(
    "xoev_gateway_config_info", "The active configuration version (value 1)", ["version"]
)
CONFIG_LOADED = Gauge(
    "xoev_gateway_config_loaded_timestamp_seconds", "When the active configuration was loaded"
)
REPLAYED = Counter("xoev_gateway_replayed", "Dead deliveries replayed")
ERASED = Counter("xoev_gateway_payloads_erased", "Submission payloads erased, by reason", ["why"])

QUEUE_DEPTH = Gauge(
    "xoev_gateway_queue_depth",
    "Deliveries not yet delivered nor dead (waiting, in flight or in retry), by destination",
    ["destination"],
)
QUEUE_OLDEST_AGE = Gauge(
    "xoev_gateway_queue_oldest_age_seconds",
    "Seconds since the oldest pending delivery was accepted or last attempted, by destination",
    ["destination"],
)
DEAD_LETTERS = Gauge(
    "xoev_gateway_dead_letters",
    "Dead deliveries waiting for a replay, by destination",
    ["destination"],
)
READY = Gauge("xoev_gateway_ready", "1 while store and broker answer (what /readyz checks)")
SCRAPE_ERRORS = Counter(
    "xoev_gateway_scrape_errors", "Scrapes whose store query failed (the gauges kept old values)"
)

SCRAPE_CACHE_SECONDS = 5.0


def config_loaded(version: str) -> None:
    CONFIG_INFO.clear()
    CONFIG_INFO.labels(version).set(1)
    CONFIG_LOADED.set(time.time())


@dataclass(frozen=True)
class QueueRow:
    """Deliveries of one destination in one state: count and oldest ``updated_at``."""

    destination: str
    state: str
    count: int
    oldest: float | None


class ScrapedState:
    """The gauges that come from the store: refreshed at most every few seconds, however
    many scrapers ask (one indexed query over pending and dead deliveries)."""

    def __init__(
        self,
        queue: Callable[[], Awaitable[Sequence[QueueRow]]],
        ready: Callable[[], Awaitable[bool]],
        destinations: Callable[[], Iterable[str]],
        cache_seconds: float = SCRAPE_CACHE_SECONDS,
    ) -> None:
        self._queue = queue
        self._ready = ready
        self._destinations = destinations
        self._cache_seconds = cache_seconds
        self._at = float("-inf")
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        async with self._lock:
            now = time.monotonic()
            if now - self._at < self._cache_seconds:
                return
            self._at = now
            READY.set(1 if await self._ready() else 0)
            try:
                rows = await self._queue()
            except Exception:
                SCRAPE_ERRORS.inc()
                return
            wall = time.time()
            QUEUE_DEPTH.clear()
            QUEUE_OLDEST_AGE.clear()
            DEAD_LETTERS.clear()
            # Configured destinations without rows show 0: an absent series alerts nothing.
            for name in self._destinations():
                for gauge in (QUEUE_DEPTH, QUEUE_OLDEST_AGE, DEAD_LETTERS):
                    gauge.labels(name).set(0)
            for row in rows:
                if row.state == "pending":
                    QUEUE_DEPTH.labels(row.destination).set(row.count)
                    age = 0.0 if row.oldest is None else max(0.0, wall - row.oldest)
                    QUEUE_OLDEST_AGE.labels(row.destination).set(age)
                elif row.state == "dead":
                    DEAD_LETTERS.labels(row.destination).set(row.count)


async def serve_metrics(
    host: str, port: int, before: Callable[[], Awaitable[None]]
) -> asyncio.Server:
    """``GET /metrics`` on its own port, for processes without an API (worker, relay).

    A few lines of HTTP/1.0 on the process's event loop rather than prometheus_client's
    thread server: ``before`` (the store query of :class:`ScrapedState`) is async and runs
    on this loop, and one request per scrape needs no more."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            parts = head.split(b"\r\n", 1)[0].split()
            path = parts[1].split(b"?", 1)[0] if len(parts) >= 2 else b""
            if parts[:1] == [b"GET"] and path == b"/metrics":
                await before()
                status, body, media = b"200 OK", generate_latest(), CONTENT_TYPE_LATEST
            else:
                status, body, media = b"404 Not Found", b"not found\n", "text/plain"
            writer.write(
                b"HTTP/1.1 "
                + status
                + b"\r\nContent-Type: "
                + media.encode()
                + b"\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port, limit=16 * 1024)
