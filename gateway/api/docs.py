"""``/docs`` without the internet, and an OpenAPI document that says how to authenticate and
what every operation answers when it fails.

FastAPI's default Swagger UI page loads its JavaScript and CSS from a CDN: blank in the
air-gapped networks municipalities run. The assets are vendored as package data
(``swagger_ui/``: swagger-ui-dist 5.x from npm, see its ``VERSION``; the PyPI
``swagger-ui-bundle`` ships 4.15, which cannot render OpenAPI 3.1, FastAPI's version) and
served by the gateway itself under ``/docs/assets``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.api.problems import PROBLEM_JSON

ASSETS = "/docs/assets"
SWAGGER_UI = Path(__file__).parent / "swagger_ui"

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

_COMMON = {
    "429": "Too many failed authentications from this client (see Retry-After)",
    "500": "Internal error",
    "503": "The store or broker is unreachable right now: retry later",
}
_AUTH = {
    "401": "No or an invalid bearer token",
    "403": "The token's role may not do this (admin endpoints)",
}
_PARAMS = {
    "404": "No such resource (or not the caller's: the same answer)",
    "422": "A parameter or the body does not fit the operation",
}


async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="xoev-gateway API",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        # "Try it out" keeps the token across reloads of the page.
        swagger_ui_parameters={"persistAuthorization": True},
    )


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}}}


def _complete(document: dict[str, Any]) -> dict[str, Any]:
    """Every ``/v1`` operation needs the bearer token; every operation lists its problem
    responses (FastAPI's own 422 body is replaced: the handlers answer problem+json)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            problems = dict(_COMMON)
            if path.startswith("/v1/"):
                operation.setdefault("security", [{"bearer": []}])
                problems.update(_AUTH)
                if "/{" in path or "requestBody" in operation or operation.get("parameters"):
                    problems.update(_PARAMS)
            if path == "/readyz":
                problems["503"] = "Not ready: store or broker unreachable, or the disk too full"
            for status, description in problems.items():
                existing = responses.get(status)
                if existing is None or "HTTPValidationError" in str(existing):
                    responses[status] = _problem(description)
    return document


def install(app: FastAPI) -> None:
    """Serve ``/docs`` from local assets; call after the routes are registered (the
    completion wraps whatever ``app.openapi`` is by then)."""
    app.router.routes.append(Route("/docs", swagger_ui, include_in_schema=False))
    app.router.routes.append(Mount(ASSETS, StaticFiles(directory=SWAGGER_UI)))
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        app.openapi_schema = _complete(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
