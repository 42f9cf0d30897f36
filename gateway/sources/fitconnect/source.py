"""The running FIT-Connect source: one worker per destination, woken by its poll interval or
by a signed callback.

Each worker processes its destination's submissions one at a time (so a callback and a poll
naming the same submission never race). When the Submission API is unreachable, or our own
side is (the sink deferred a submission), the worker backs off exponentially with jitter
and tries again; nothing is lost, because a submission leaves the pickup list only once we
answered it.

Callbacks: ``POST /fit-connect/callbacks/{destinationId}`` (see ``callback_routes``). The HMAC
is checked over the raw body with that destination's secret before anything is parsed or
fetched; a bad one is answered 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.errors import NotFound
from gateway.sources.base import SubmissionSink
from gateway.sources.fitconnect import crypto
from gateway.sources.fitconnect.client import ApiUnavailable, SubmissionApiClient
from gateway.sources.fitconnect.settings import DestinationSettings, FitConnectSettings
from gateway.sources.fitconnect.subscriber import Outcome, Result, Subscriber

log = logging.getLogger(__name__)

CALLBACK_PATH = "/fit-connect/callbacks/{destination_id}"
MAX_CALLBACK_BYTES = 1024 * 1024
NEW_SUBMISSIONS = "https://schema.fitko.de/fit-connect/submission-api/callbacks/new-submissions"


class Backoff:
    """Exponential backoff with full jitter between ``base``/2 and the capped delay."""

    def __init__(self, base: float, maximum: float) -> None:
        self.base = base
        self.maximum = maximum
        self.failures = 0

    def reset(self) -> None:
        self.failures = 0

    def next_delay(self) -> float:
        self.failures += 1
        delay = min(self.maximum, self.base * 2 ** (self.failures - 1))
        return random.uniform(delay / 2, delay)


class DestinationWorker:
    def __init__(
        self,
        subscriber: Subscriber,
        *,
        interval: float,
        backoff: Backoff,
        on_result: Callable[[Result], Awaitable[None] | None] | None = None,
    ) -> None:
        self.subscriber = subscriber
        self.interval = interval
        self.backoff = backoff
        self.on_result = on_result
        self._named: list[str] = []
        self._deferred: set[str] = set()
        self._wake = asyncio.Event()
        # For /readyz: when the last round went through, and why the last one did not.
        self.last_success: float | None = None
        self.last_error: str | None = None
        self.failures = 0

    def notify(self, submission_ids: Sequence[str]) -> None:
        """A callback named these submissions: fetch them now."""
        for submission_id in submission_ids:
            if submission_id not in self._named:
                self._named.append(submission_id)
        self._wake.set()

    async def run(self) -> None:
        delay = 0.0
        while True:
            if delay:
                await self._sleep(delay)
            try:
                healthy = await self.round()
                error = None if healthy else "a submission was deferred (our store or broker)"
            except ApiUnavailable as exc:
                log.warning(
                    "destination %s: Submission API unavailable: %s",
                    self.subscriber.destination_id,
                    exc,
                )
                healthy, error = False, f"Submission API unavailable: {exc}"
            except Exception as exc:
                # A refusal by the API (401/403: credentials, scope) or a bug must not end
                # the source: log it, back off, try again.
                log.exception("destination %s: round failed", self.subscriber.destination_id)
                healthy, error = False, f"{type(exc).__name__}: {exc}"
            if healthy:
                self.backoff.reset()
                self.last_success, self.failures = time.time(), 0
                delay = self.interval
            else:
                self.last_error, self.failures = error, self.failures + 1
                delay = self.backoff.next_delay()

    def state(self) -> dict[str, object]:
        return {
            "last_success": self.last_success,
            "failures": self.failures,
            "last_error": self.last_error,
            "deferred": len(self._deferred),
        }

    async def round(self) -> bool:
        """Named and deferred submissions first, then the pickup list; False if anything was
        deferred. Deferred ids are kept and retried by id, so that they are not lost even if
        the delivery service stopped listing them (e.g. once downloaded, state ``forwarded``:
        whether it does is unconfirmed)."""
        healthy = True
        done: set[str] = set()
        named, self._named = self._named, []
        try:
            for submission_id in named:
                healthy &= await self._one(submission_id)
                done.add(submission_id)
        finally:
            self._named[:0] = [n for n in named if n not in done]  # unprocessed stay queued
        items = await self.subscriber.client.submissions_for_pickup(self.subscriber.destination_id)
        listed = [item.submission_id for item in items]
        for submission_id in dict.fromkeys(listed + sorted(self._deferred)):
            if submission_id not in done:
                healthy &= await self._one(submission_id)
                done.add(submission_id)
        return healthy

    async def _one(self, submission_id: str) -> bool:
        result = await self.subscriber.process(submission_id)
        if result.outcome is Outcome.DEFERRED:
            self._deferred.add(submission_id)
        else:
            self._deferred.discard(submission_id)
        return await self._report(result)

    async def _report(self, result: Result) -> bool:
        if self.on_result is not None:
            maybe = self.on_result(result)
            if maybe is not None:
                await maybe
        return result.outcome is not Outcome.DEFERRED

    async def _sleep(self, delay: float) -> None:
        if self._named:
            return
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=delay)


class FitConnectSource:
    """The source as the runtime starts it: ``await source.run()`` until cancelled."""

    name = "fit-connect"

    def __init__(
        self,
        settings: FitConnectSettings,
        sink: SubmissionSink,
        *,
        http: httpx.AsyncClient | None = None,
        backoff_base: float = 1.0,
        backoff_max: float = 300.0,
        on_result: Callable[[Result], Awaitable[None] | None] | None = None,
    ) -> None:
        self.settings = settings
        self._http = http or httpx.AsyncClient(timeout=30.0)
        self._owns_http = http is None
        self.running = False
        self.workers: dict[str, DestinationWorker] = {}
        self._secrets: dict[str, str | None] = {}
        for destination in settings.destinations:
            self.workers[destination.destination_id] = DestinationWorker(
                Subscriber(destination, destination.keys(), self._client(destination), sink),
                interval=destination.poll_interval,
                backoff=Backoff(backoff_base, backoff_max),
                on_result=on_result,
            )
            self._secrets[destination.destination_id] = destination.callback_secret()

    def _client(self, destination: DestinationSettings) -> SubmissionApiClient:
        return SubmissionApiClient(
            api_base_url=destination.api_base_url,
            token_url=destination.token_url,
            client_id=destination.client_id,
            client_secret=destination.client_secret(),
            http=self._http,
        )

    async def run(self) -> None:
        self.running = True
        try:
            async with asyncio.TaskGroup() as group:
                for worker in self.workers.values():
                    group.create_task(worker.run())
        finally:
            self.running = False
            await self.close()

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    def state(self) -> dict[str, object]:
        """Per destination: last successful round, failures since, last error (``/readyz``)."""
        return {
            "running": self.running,
            "destinations": {d: w.state() for d, w in self.workers.items()},
        }

    def handle_callback(
        self, destination_id: str, headers: Mapping[str, str], body: bytes
    ) -> list[str]:
        """Check a callback and wake the destination's worker for the named submissions.

        ``headers`` must be case-insensitive (Starlette's are). Raises ``CallbackRejected``
        (401) on a bad or stale HMAC and ``NotFound`` for an unknown destination; in both
        cases nothing is fetched. Returns the submission ids that will be fetched: none in a
        process where the source does not run (``sources=false``); the HMAC is still checked
        there, and the polling process picks the submissions up.
        """
        worker = self.workers.get(destination_id)
        secret = self._secrets.get(destination_id)
        if worker is None:
            raise NotFound(f"no FIT-Connect destination {destination_id} here")
        if secret is None:
            raise crypto.CallbackRejected(f"destination {destination_id} has no callback secret")
        crypto.check_callback(secret, headers, body)
        try:
            message = json.loads(body)
        except ValueError as exc:
            raise crypto.CallbackRejected("callback body is not JSON") from exc
        if not isinstance(message, dict) or message.get("type") != NEW_SUBMISSIONS:
            return []  # new-events callbacks need nothing from a subscriber
        named = [
            str(item["submissionId"])
            for item in message.get("submissions") or []
            if isinstance(item, dict)
            and item.get("destinationId") == destination_id
            and "submissionId" in item
        ]
        if not named:  # older services send only the deprecated submissionIds
            named = [str(s) for s in message.get("submissionIds") or []]
        if not self.running:
            return []
        worker.notify(named)
        return named

    async def callback(self, request: Request) -> Response:
        """The callback endpoint's answer (see ``callback_routes``)."""
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_CALLBACK_BYTES:
                return _problem(413, "Payload too large", "callback body too large", "about:blank")
        try:
            named = self.handle_callback(
                request.path_params["destination_id"], request.headers, body
            )
        except crypto.CallbackRejected as exc:
            return _problem(401, exc.title, exc.detail, exc.type_uri)
        except NotFound as exc:
            return _problem(404, exc.title, exc.detail, exc.type_uri)
        return JSONResponse({"fetching": named})

    def callback_routes(self) -> list[Route]:
        return callback_routes(lambda: self)

    def callback_app(self) -> Starlette:
        return Starlette(routes=self.callback_routes())


def callback_routes(current: Callable[[], FitConnectSource | None]) -> list[Route]:
    """``POST /fit-connect/callbacks/{destination_id}``, answered by whichever source is
    ``current()`` (a reload that changes ``fit-connect.yaml`` replaces the source); 404
    without one. Not behind the sender bearer auth: each callback carries its own HMAC."""

    async def endpoint(request: Request) -> Response:
        source = current()
        if source is None:
            return _problem(404, "Not Found", "no FIT-Connect source configured", "about:blank")
        return await source.callback(request)

    return [Route(CALLBACK_PATH, endpoint, methods=["POST"])]


def _problem(status: int, title: str, detail: str, type_uri: str) -> Response:
    return JSONResponse(
        {"type": type_uri, "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
    )
