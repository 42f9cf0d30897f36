"""The FastAPI application: submissions, status, operations and admin endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Route

from gateway import console
from gateway.admin.preview import preview
from gateway.api import docs, submissions
from gateway.api.auth import admin_of, principal_of, runtime_of
from gateway.api.body import BodyLimit
from gateway.api.limits import AuthFailureThrottle, SenderLimits
from gateway.api.problems import (
    client_gone_handler,
    gateway_error_handler,
    http_error_handler,
    internal_error_handler,
    os_error_handler,
    problem,
    validation_error_handler,
)
from gateway.api.views import submission_body
from gateway.errors import (
    ConfigError,
    GatewayError,
    NotFound,
    PayloadTooLarge,
    SchemaRegistryError,
)
from gateway.routing.access import Admin, Principal
from gateway.runtime import Runtime, replay_dead
from gateway.settings import Settings
from gateway.store.audit import AuditOutcome

# FIT-Connect's callbacks (docs/fit-connect.md); the path is the one the operator registers.
FIT_CONNECT_CALLBACK = "/fit-connect/callbacks/{destination_id}"


async def fit_connect_callback(request: Request) -> Response:
    """Not behind the sender bearer auth: the source checks each callback's own HMAC."""
    source = runtime_of(request).fit_connect
    if source is None:
        return problem(404, "Not Found", "no FIT-Connect source is configured")
    return await source.callback(request)


class ReplayRequest(BaseModel):
    delivery_ids: list[str] | None = None


@dataclass
class _Audit:
    """What an audited admin action fills in while it runs."""

    target: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    outcome: AuditOutcome = AuditOutcome.OK


@asynccontextmanager
async def audited(request: Request, admin: Admin, action: str) -> AsyncIterator[_Audit]:
    """Record the admin action in the audit log once it ran, with its outcome; an error
    is recorded as ``failed`` with its detail and raised on."""
    entry = _Audit()
    try:
        yield entry
    except GatewayError as exc:
        entry.outcome = AuditOutcome.FAILED
        entry.detail["error"] = exc.detail
        raise
    finally:
        await runtime_of(request).audit.record(
            admin.actor, action, entry.target, entry.outcome, entry.detail or None
        )


def create_app(
    settings: Settings,
    *,
    run_worker: bool = True,
    run_relay: bool | None = None,
    on_loaded: Callable[[], None] | None = None,
) -> FastAPI:
    """``run_relay`` defaults to ``settings.relay_in_api`` (always on with ``run_worker``);
    ``on_loaded`` goes to ``Runtime.start``."""
    relay = (run_worker or settings.relay_in_api) if run_relay is None else run_relay

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            runtime = await Runtime.start(
                settings,
                run_worker=run_worker,
                run_relay=relay,
                serve_api=True,
                on_loaded=on_loaded,
            )
        except GatewayError as exc:
            # uvicorn only logs a failed start-up; the command reports the cause and exits
            # with the error's code (gateway.cli.serve).
            app.state.startup_error = exc
            raise
        app.state.runtime = runtime
        loop = asyncio.get_running_loop()
        hup = False
        # SIGHUP reloads the config; only possible in the main thread (not in test clients).
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, runtime.reload_or_keep)
            hup = True
        try:
            yield
        finally:
            if hup:
                loop.remove_signal_handler(signal.SIGHUP)
            await runtime.stop()

    otel = settings.opentelemetry
    app = FastAPI(
        title="xoev-gateway",
        version="0.1.0",
        lifespan=lifespan,
        telemetry={"tracing": otel, "metrics": otel, "logs": otel},
        # /docs is served from local assets below (docs.install); ReDoc would need a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.add_exception_handler(GatewayError, gateway_error_handler)
    app.add_exception_handler(HTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(OSError, os_error_handler)
    app.add_exception_handler(ClientDisconnect, client_gone_handler)
    app.add_exception_handler(Exception, internal_error_handler)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(AuthFailureThrottle, per_minute=settings.auth_failures_per_minute)
    app.state.sender_limits = SenderLimits()

    # The hot path: one plain Starlette route, documented by its own OpenAPI entry.
    submissions.install(app)
    app.router.routes.append(Route(FIT_CONNECT_CALLBACK, fit_connect_callback, methods=["POST"]))

    @app.get("/v1/submissions/{submission_id}")
    async def status(
        submission_id: str, request: Request, who: Annotated[Principal, Depends(principal_of)]
    ) -> dict[str, Any]:
        if isinstance(who, Admin):
            async with audited(request, who, "submission.read") as entry:
                entry.target = submission_id
                view = await runtime_of(request).store.submission(submission_id)
            return submission_body(view, full=True)
        view = await runtime_of(request).store.submission(submission_id)
        if view.sender != who.name:
            # Same answer as for an unknown id: do not reveal other senders' submissions.
            raise NotFound(f"no submission {submission_id}")
        # Senders see no internals (paths, Fachverfahren errors): gateway/api/views.py.
        return submission_body(view, full=False)

    @app.get("/v1/admin/submissions/{submission_id}")
    async def admin_status(
        submission_id: str, request: Request, admin: Annotated[Admin, Depends(admin_of)]
    ) -> dict[str, Any]:
        """Everything about a submission: receipts, problems and events in full."""
        async with audited(request, admin, "submission.read") as entry:
            entry.target = submission_id
            view = await runtime_of(request).store.submission(submission_id)
        return submission_body(view, full=True)

    @app.post("/v1/admin/submissions/{submission_id}/erase")
    async def erase(
        submission_id: str, request: Request, admin: Annotated[Admin, Depends(admin_of)]
    ) -> dict[str, Any]:
        """Erase the submission's payload (XML, attachments) now, e.g. on a GDPR Art. 17
        request; the evidence (ids, hashes, events) stays, and it is audited (by the
        retention module, refused or done)."""
        runtime = runtime_of(request)
        erased = await runtime.retention.erase(submission_id, admin.actor, runtime.audit_hook)
        return {
            "id": erased.submission_id,
            "payload_erased_at": erased.erased_at,
            "already_erased": erased.already,
        }

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz(request: Request) -> Response:
        runtime = runtime_of(request)
        try:
            await runtime.store.ping()
            await runtime.broker.ping()
        except GatewayError as exc:
            return problem(503, "Not ready", exc.detail)
        full = runtime.storage_below_floor()
        if full is not None:
            return problem(503, "Not ready", full)
        # Sources report, they do not decide readiness: FIT-Connect being unreachable does
        # not stop this process from accepting (the worker delivers, the API takes posts).
        return JSONResponse(
            {
                "status": "ready",
                "config_version": runtime.config.version,
                "sources": runtime.sources_state(),
            }
        )

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        await runtime_of(request).before_scrape()  # the store's queue gauges (cached)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/admin/dead-letters")
    async def dead_letters(
        request: Request, admin: Annotated[Admin, Depends(admin_of)]
    ) -> list[dict[str, Any]]:
        async with audited(request, admin, "dead-letters.list") as entry:
            items = await runtime_of(request).broker.dead_letters()
            entry.detail["count"] = len(items)
        return [
            {
                "delivery_id": d.item.delivery_id,
                "destination": d.item.destination,
                "reason": d.reason,
                "attempts": d.attempts,
            }
            for d in items
        ]

    @app.post("/v1/admin/dead-letters/replay")
    async def replay(
        body: ReplayRequest, request: Request, admin: Annotated[Admin, Depends(admin_of)]
    ) -> dict[str, list[str]]:
        async with audited(request, admin, "dead-letters.replay") as entry:
            ids = body.delivery_ids
            entry.target = "*" if ids is None else ",".join(ids)
            replayed = await replay_dead(runtime_of(request), ids)
            entry.detail["replayed"] = replayed
        return {"replayed": replayed}

    @app.post("/v1/admin/config/reload", response_model=None)
    async def reload(
        request: Request, admin: Annotated[Admin, Depends(admin_of)]
    ) -> dict[str, str] | JSONResponse:
        runtime = runtime_of(request)
        try:
            async with audited(request, admin, "config.reload") as entry:
                entry.detail["previous_version"] = runtime.config.version
                config = runtime.reload_config()
                entry.target = config.version
                await runtime.schemas_reloaded()
        except (ConfigError, SchemaRegistryError) as exc:
            return problem(
                ConfigError.status,  # a refused catalog is a refused configuration
                "Configuration refused; the previous one stays active",
                exc.detail,
                exc.type_uri,
                active_config_version=runtime.config.version,
            )
        return {"config_version": config.version}

    @app.post(
        "/v1/admin/mapping/preview",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/xml": {"schema": {"type": "string"}}},
            }
        },
    )
    async def mapping_preview(
        request: Request,
        admin: Annotated[Admin, Depends(admin_of)],
        municipality: Annotated[
            str | None, Query(description="AGS or ARS; default: the message's recipient")
        ] = None,
    ) -> dict[str, Any]:
        """What each routed destination's adapter would receive for this message; no delivery."""
        runtime = runtime_of(request)
        async with audited(request, admin, "mapping.preview") as entry:
            body = await request.body()
            entry.detail.update(bytes=len(body), sha256=hashlib.sha256(body).hexdigest())
            entry.target = municipality or None
            if len(body) > settings.max_xml_bytes:
                raise PayloadTooLarge(f"the XML is larger than {settings.max_xml_bytes} bytes")
            shown = preview(
                body, runtime.registry, runtime.directory, runtime.config, municipality or None
            )
        return shown.to_json()

    @app.get("/v1/admin/audit")
    async def audit(
        request: Request,
        admin: Annotated[Admin, Depends(admin_of)],
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: Annotated[float | None, Query(description="Unix time")] = None,
    ) -> list[dict[str, Any]]:
        """The audit log, newest first; reading it is recorded too."""
        log = runtime_of(request).audit
        async with audited(request, admin, "audit.read"):
            entries = await log.entries(
                limit=limit, actor=actor, action=action, target=target, since=since
            )
        return [e.to_json() for e in entries]

    docs.install(app)
    # The admin console: its own pages under /admin, after every API route.
    console.install(app, settings)
    return app
