"""The console's pages: one handler per page, rendered from ``templates/``.

Reads go through ``gateway.store.browse`` and the runtime's parts; actions (replay,
reload) call the same functions as the admin API. GET never changes anything; every POST
checks the session's CSRF token first (``session.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.admin.explain import explain
from gateway.admin.preview import Preview, preview
from gateway.console.session import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Session,
    SessionSigner,
    admin_still_valid,
    authenticate_admin,
    same_token,
)
from gateway.errors import ConfigError, CsrfRefused, GatewayError, NotFound, SchemaRegistryError
from gateway.intake.field_catalog import FieldCatalog, field_catalog
from gateway.municipality import level_of
from gateway.routing.access import Admin
from gateway.runtime import Runtime, replay_dead
from gateway.settings import Settings
from gateway.store.audit import AuditOutcome
from gateway.store.browse import Browser, Cursor, SubmissionFilter
from gateway.store.states import DeliveryState

HERE = Path(__file__).parent
PAGE_SIZE = 50
STATES = frozenset(s.value for s in DeliveryState)

Handler = Callable[[Request, Session], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def _time(at: float | None) -> str:
    if at is None:
        return ""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pretty(detail: str | None) -> str:
    if not detail:
        return ""
    try:
        return json.dumps(json.loads(detail), indent=1, ensure_ascii=False)
    except ValueError:
        return detail


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["time"] = _time
    env.filters["pretty"] = _pretty
    env.filters["size"] = _size
    env.globals["level_of"] = level_of
    return env


def _utc(value: str) -> float | None:
    """A ``datetime-local`` or date input, read as UTC; None when empty or unusable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC).timestamp() if parsed.tzinfo is None else parsed.timestamp()


class Console:
    def __init__(self, settings: Settings) -> None:
        secret = settings.console_secret
        self.signer = SessionSigner(
            secret.get_secret_value().encode() if secret else None,
            settings.console_session_seconds,
        )
        self.settings = settings
        self.env = _environment()
        self._catalogs: dict[tuple[str, str], FieldCatalog] = {}

    # -- plumbing ---------------------------------------------------------------------

    def render(
        self, request: Request, template: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        session: Session | None = getattr(request.state, "console_session", None)
        html = self.env.get_template(template).render(
            request=request, session=session, path=request.url.path, **context
        )
        response = HTMLResponse(html, status_code=status)
        # Pages show citizens' data and carry CSRF tokens: never cached, never framed.
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
        )
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    def _session(self, request: Request) -> Session | None:
        session = self.signer.session(request.cookies.get(SESSION_COOKIE))
        if session is None or not admin_still_valid(_runtime(request).config, session.admin):
            return None
        return session

    def page(self, handler: Handler) -> Endpoint:
        """Wraps a handler: a session is required (else to the login page, saying whether
        it expired) and a POST must carry the session's CSRF token."""

        async def endpoint(request: Request) -> Response:
            session = self._session(request)
            if session is None:
                query = {"next": request.url.path}
                if request.cookies.get(SESSION_COOKIE):
                    query["expired"] = "1"
                response: Response = RedirectResponse(
                    f"/admin/login?{urlencode(query)}", status_code=303
                )
                if request.cookies.get(SESSION_COOKIE):
                    response.delete_cookie(SESSION_COOKIE, path="/admin")
                return response
            request.state.console_session = session
            if request.method == "POST":
                # A pasted message is a text field: Starlette's 1 MiB default would refuse
                # messages the API takes.
                form = await request.form(max_part_size=self.settings.max_xml_bytes + 65536)
                request.state.form = form
                if not same_token(_text(form, "csrf"), session.csrf):
                    refused = CsrfRefused("the form did not carry this session's CSRF token")
                    return self.render(request, "error.html", 403, error=refused)
            try:
                return await handler(request, session)
            except GatewayError as exc:  # not found, store unavailable: a page, not JSON
                return self.render(request, "error.html", exc.status, error=exc)

        return endpoint

    async def audit(
        self,
        request: Request,
        actor: str,
        action: str,
        target: str | None,
        outcome: AuditOutcome = AuditOutcome.OK,
        **detail: Any,
    ) -> None:
        """Into the audit log like the admin API's actions (same action names), marked as
        done through the console; recorded after the action, with its outcome."""
        await _runtime(request).audit.record(
            actor, action, target, outcome, {"via": "console", **detail}
        )

    # -- login ------------------------------------------------------------------------

    async def login_form(self, request: Request, error: str | None = None) -> Response:
        token, cookie = self.signer.new_login_form()
        response = self.render(
            request,
            "login.html",
            401 if error else 200,
            csrf=token,
            error=error,
            expired=request.query_params.get("expired") == "1",
            next=_safe_next(request.query_params.get("next", "")),
        )
        response.set_cookie(
            LOGIN_COOKIE,
            cookie,
            max_age=600,
            path="/admin",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return await self.login_form(request)
        form = await request.form()
        expected = self.signer.login_form_token(request.cookies.get(LOGIN_COOKIE))
        if not same_token(_text(form, "csrf"), expected):
            refused = CsrfRefused("the login form did not carry its CSRF token; load it again")
            return self.render(request, "error.html", 403, error=refused)
        config = _runtime(request).config
        token = _text(form, "token").strip()
        admin = authenticate_admin(config, token)
        if admin is None:
            principal = config.authenticate(token) if token else None
            if principal is not None:  # a sender's token: known, refused, audited
                await self.audit(
                    request,
                    f"sender:{principal.name}",
                    "console.login",
                    None,
                    AuditOutcome.REFUSED,
                    reason="sender credentials on the admin console",
                )
            return await self.login_form(request, "This token is not an admin token.")
        await self.audit(request, admin.actor, "console.login", None)
        _session, cookie = self.signer.new_session(admin.name)
        response = RedirectResponse(_safe_next(_text(form, "next")), status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            max_age=int(self.signer.lifetime),
            path="/admin",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        response.delete_cookie(LOGIN_COOKIE, path="/admin")
        return response

    async def logout(self, request: Request, session: Session) -> Response:
        await self.audit(request, _actor(session), "console.logout", None)
        response = RedirectResponse("/admin/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/admin")
        return response

    # -- submissions ------------------------------------------------------------------

    async def submissions(self, request: Request, _session: Session) -> Response:
        runtime = _runtime(request)
        q = request.query_params
        state_text = q.get("state", "")
        municipality = q.get("municipality", "").strip()
        problem = None
        if municipality:
            try:
                municipality = runtime.directory.normalize(municipality)
            except GatewayError as exc:
                problem = exc.detail
        filters = SubmissionFilter(
            state=DeliveryState(state_text) if state_text in STATES else None,
            municipality=municipality or None,
            message_type=q.get("service") or None,
            sender=q.get("sender") or None,
            received_from=_utc(q.get("from", "")),
            received_until=_utc(q.get("until", "")),
        )
        after = Cursor.decode(q.get("after", ""))
        page = None
        if problem is None:
            page = await Browser(runtime.db).submissions(filters, after, PAGE_SIZE)
        next_url = None
        kept = {k: v for k, v in q.items() if k != "after" and v}
        first_url = f"/admin/submissions?{urlencode(kept)}"
        if page is not None and page.next is not None:
            next_url = f"/admin/submissions?{urlencode({**kept, 'after': page.next.encode()})}"
        return self.render(
            request,
            "submissions.html",
            q=q,
            page=page,
            problem=problem,
            next_url=next_url,
            first_url=first_url,
            paged=after is not None,
            states=list(DeliveryState),
            services=sorted({m for s in runtime.registry.sets for m in s.messages}),
            senders=runtime.config.sender_names,
            names=runtime.directory.names,
        )

    async def submission(self, request: Request, session: Session) -> Response:
        runtime = _runtime(request)
        submission_id = request.path_params["submission_id"]
        view = await runtime.store.submission(submission_id)
        xml = await Browser(runtime.db).raw_xml(submission_id)
        await self.audit(request, _actor(session), "submission.read", submission_id)
        return self.render(
            request,
            "submission.html",
            s=view,
            xml=xml.decode("utf-8", "replace") if xml is not None else None,
            name=runtime.directory.names.get(view.municipality, ""),
        )

    async def submission_xml(self, request: Request, session: Session) -> Response:
        submission_id = request.path_params["submission_id"]
        xml = await Browser(_runtime(request).db).raw_xml(submission_id)
        if xml is None:
            raise NotFound(f"the payload of submission {submission_id} was erased")
        await self.audit(request, _actor(session), "submission.read", submission_id, xml=True)
        # As a download, never rendered: the XML is a sender's, not ours.
        return Response(
            xml,
            media_type="application/xml",
            headers={
                "Content-Disposition": f'attachment; filename="{submission_id}.xml"',
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            },
        )

    # -- dead letters -----------------------------------------------------------------

    async def dead_letters(self, request: Request, session: Session) -> Response:
        runtime = _runtime(request)
        letters = await runtime.broker.dead_letters()
        await self.audit(request, _actor(session), "dead-letters.list", None, count=len(letters))
        context = await Browser(runtime.db).dead_context([d.item.delivery_id for d in letters])
        by_destination: dict[str, list[dict[str, Any]]] = {}
        for letter in letters:
            by_destination.setdefault(letter.item.destination, []).append(
                {"letter": letter, "context": context.get(letter.item.delivery_id)}
            )
        return self.render(
            request,
            "dead_letters.html",
            groups=sorted(by_destination.items()),
            replayed=request.query_params.get("replayed"),
        )

    async def dead_letter(self, request: Request, session: Session) -> Response:
        runtime = _runtime(request)
        delivery_id = request.path_params["delivery_id"]
        letters = {d.item.delivery_id: d for d in await runtime.broker.dead_letters()}
        letter = letters.get(delivery_id)
        browser = Browser(runtime.db)
        context = (await browser.dead_context([delivery_id])).get(delivery_id)
        if context is None:
            raise NotFound(f"no delivery {delivery_id}")
        view = await runtime.store.submission(context.submission_id)
        await self.audit(
            request,
            _actor(session),
            "submission.read",
            context.submission_id,
            delivery=delivery_id,
        )
        delivery = next(d for d in view.deliveries if d.id == delivery_id)
        events = [e for e in view.events if e.delivery_id == delivery_id]
        xml = await browser.raw_xml(context.submission_id)
        shown: Preview | None = None
        preview_error = None
        if xml is None:
            preview_error = "The payload was erased (retention): nothing to preview or replay."
        else:
            try:
                shown = preview(
                    xml, runtime.registry, runtime.directory, runtime.config, view.municipality
                )
            except GatewayError as exc:
                preview_error = f"{exc.title}: {exc.detail}"
        now = None
        if shown is not None:
            now = next((d for d in shown.deliveries if d.destination == delivery.destination), None)
            if now is None:
                preview_error = (
                    f"The current configuration no longer routes this submission to "
                    f"{delivery.destination} (it goes to "
                    f"{', '.join(d.destination for d in shown.deliveries)})."
                )
        destination = runtime.config.destinations.get(delivery.destination)
        return self.render(
            request,
            "dead_letter.html",
            letter=letter,
            context=context,
            delivery=delivery,
            events=events,
            shown=shown,
            now=now,
            preview_error=preview_error,
            destination=destination,
        )

    async def replay(self, request: Request, session: Session) -> Response:
        runtime = _runtime(request)
        form: FormData = request.state.form
        only = _text(form, "only")
        destination = _text(form, "destination")
        if only:
            ids = [only]
        elif _text(form, "action") == "all":
            ids = [
                d.item.delivery_id
                for d in await runtime.broker.dead_letters()
                if d.item.destination == destination
            ]
        else:
            ids = [str(v) for v in form.getlist("delivery_id")]
        replayed = await replay_dead(runtime, ids) if ids else []
        every = _text(form, "action") == "all" and not only
        await self.audit(
            request,
            _actor(session),
            "dead-letters.replay",
            f"{destination}:*" if every else ",".join(ids),
            replayed=replayed,
        )
        return RedirectResponse(f"/admin/dead-letters?replayed={len(replayed)}", status_code=303)

    # -- configuration ----------------------------------------------------------------

    def _config_page(self, request: Request, status: int = 200, **extra: Any) -> HTMLResponse:
        runtime = _runtime(request)
        config = runtime.config
        senders = [config.senders[name] for name in config.sender_names]
        destinations = [
            {
                "name": d.name,
                "adapter": d.adapter,
                "max_attempts": d.max_attempts,
                "timeout": d.timeout_seconds,
                # SecretStr fields dump masked; secrets are env references anyway.
                "settings": json.dumps(d.settings.model_dump(mode="json"), ensure_ascii=False),
                "source": d.source,
            }
            for d in sorted(config.destinations.values(), key=lambda d: d.name)
        ]
        routes = sorted(config.routes.items())
        return self.render(
            request,
            "config.html",
            status,
            config=config,
            senders=senders,
            default_recipients=config.default_recipients,
            admins=sorted(config.admins),
            destinations=destinations,
            routes=routes,
            route_sources=config.route_sources,
            services=sorted({m for s in runtime.registry.sets for m in s.messages}),
            **extra,
        )

    async def config(self, request: Request, _session: Session) -> Response:
        return self._config_page(request)

    async def reload(self, request: Request, session: Session) -> Response:
        runtime = _runtime(request)
        previous = runtime.config.version
        try:
            config = runtime.reload_config()
            await runtime.schemas_reloaded()
        except (ConfigError, SchemaRegistryError) as exc:
            await self.audit(
                request,
                _actor(session),
                "config.reload",
                None,
                AuditOutcome.FAILED,
                previous_version=previous,
                error=exc.detail,
            )
            return self._config_page(request, 422, refused=exc.detail)
        await self.audit(
            request, _actor(session), "config.reload", config.version, previous_version=previous
        )
        return self._config_page(request, reloaded=config.version)

    async def explain(self, request: Request, _session: Session) -> Response:
        runtime = _runtime(request)
        municipality = request.query_params.get("municipality", "").strip()
        service = request.query_params.get("service", "").strip()
        shown = problem = None
        if municipality and service:
            try:
                ags = runtime.directory.normalize(municipality)
            except GatewayError as exc:
                problem = exc.detail
            else:
                shown = explain(runtime.config, ags, runtime.directory.names.get(ags, ""), service)
        return self.render(
            request,
            "explain.html",
            municipality=municipality,
            service=service,
            shown=shown,
            problem=problem,
            services=sorted({m for s in runtime.registry.sets for m in s.messages}),
        )

    async def preview(self, request: Request, session: Session) -> Response:
        runtime = _runtime(request)
        shown = problem = None
        xml = municipality = ""
        status = 200
        if request.method == "POST":
            form: FormData = request.state.form
            xml = _text(form, "xml")
            municipality = _text(form, "municipality").strip()
            upload = form.get("file")
            body = xml.encode()
            if upload is not None and not isinstance(upload, str):
                uploaded = await upload.read(self.settings.max_xml_bytes + 1)
                if uploaded:
                    body = uploaded
                    xml = uploaded.decode("utf-8", "replace")
            if len(body) > self.settings.max_xml_bytes:
                problem, status = f"the XML is larger than {self.settings.max_xml_bytes} bytes", 413
            elif not body.strip():
                problem, status = "paste or upload a message", 422
            else:
                try:
                    shown = preview(
                        body,
                        runtime.registry,
                        runtime.directory,
                        runtime.config,
                        municipality or None,
                    )
                except GatewayError as exc:
                    problem, status = f"{exc.title}: {exc.detail}", exc.status
                await self.audit(
                    request,
                    _actor(session),
                    "mapping.preview",
                    municipality or None,
                    AuditOutcome.OK if problem is None else AuditOutcome.FAILED,
                    bytes=len(body),
                    sha256=hashlib.sha256(body).hexdigest(),
                )
        return self.render(
            request,
            "preview.html",
            status,
            shown=shown,
            problem=problem,
            xml=xml,
            municipality=municipality,
        )

    async def audit_log(self, request: Request, session: Session) -> Response:
        q = request.query_params
        actor, action = q.get("actor") or None, q.get("action") or None
        entries = await _runtime(request).audit.entries(limit=200, actor=actor, action=action)
        await self.audit(request, _actor(session), "audit.read", None)
        return self.render(request, "audit.html", entries=entries, q=q)

    # -- schemas and health -----------------------------------------------------------

    async def schemas(self, request: Request, _session: Session) -> Response:
        return self.render(request, "schemas.html", sets=_runtime(request).registry.sets)

    async def fields(self, request: Request, _session: Session) -> Response:
        runtime = _runtime(request)
        message_type = request.path_params["message_type"]
        schema_set = runtime.registry.find(message_type)
        if schema_set is None:
            raise NotFound(f"no schema set has the message type {message_type}")
        key = (runtime.schema_digest, message_type)
        catalog = self._catalogs.get(key)
        if catalog is None:
            # Reads the XSDs again with xmlschema (tens of ms): off the event loop, cached
            # per schema digest (a reload that changed a schema file gets a new one).
            catalog = await asyncio.to_thread(
                field_catalog, message_type, runtime.settings.all_schema_dirs
            )
            self._catalogs[key] = catalog
        return self.render(request, "fields.html", catalog=catalog, schema_set=schema_set)

    async def health(self, request: Request, _session: Session) -> Response:
        runtime = _runtime(request)
        checks: list[tuple[str, bool, str]] = []
        for name, ping in (("store", runtime.store.ping), ("broker", runtime.broker.ping)):
            try:
                await ping()
                checks.append((name, True, "reachable"))
            except GatewayError as exc:
                checks.append((name, False, exc.detail))
        full = runtime.storage_below_floor()
        checks.append(("free space", full is None, full or "above the floor"))
        depths = []
        try:
            depths = await Browser(runtime.db).queue_depths()
        except GatewayError as exc:
            checks.append(("queue depths", False, exc.detail))
        return self.render(
            request,
            "health.html",
            checks=checks,
            sources=runtime.sources_state(),
            depths=depths,
            broker=runtime.settings.broker,
            now=time.time(),
        )


def _actor(session: Session) -> str:
    return Admin(session.admin).actor


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _safe_next(target: str) -> str:
    """Only console paths: a login must not redirect elsewhere (open redirect)."""
    inside = target.startswith("/admin/") and "//" not in target and "\\" not in target
    if inside and not target.startswith("/admin/login"):
        return target
    return "/admin/submissions"


async def _home(_request: Request) -> Response:
    return RedirectResponse("/admin/submissions", status_code=303)


def install(app: Starlette, settings: Settings) -> None:
    """Mount the console under ``/admin`` (after the API routes, which keep their paths)."""
    console = Console(settings)
    page = console.page
    routes = [
        Route("/", _home),
        Route("/login", console.login, methods=["GET", "POST"]),
        Route("/logout", page(console.logout), methods=["POST"]),
        Route("/submissions", page(console.submissions)),
        Route("/submissions/{submission_id}", page(console.submission)),
        Route("/submissions/{submission_id}/xml", page(console.submission_xml)),
        Route("/dead-letters", page(console.dead_letters)),
        Route("/dead-letters/replay", page(console.replay), methods=["POST"]),
        Route("/dead-letters/{delivery_id}", page(console.dead_letter)),
        Route("/config", page(console.config)),
        Route("/config/reload", page(console.reload), methods=["POST"]),
        Route("/config/explain", page(console.explain)),
        Route("/config/preview", page(console.preview), methods=["GET", "POST"]),
        Route("/schemas", page(console.schemas)),
        Route("/schemas/{message_type}", page(console.fields)),
        Route("/health", page(console.health)),
        Route("/audit", page(console.audit_log)),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="console-static"),
    ]
    app.router.routes.append(Mount("/admin", routes=routes))
    app.state.console = console


__all__ = ["Console", "install"]
