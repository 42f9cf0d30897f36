"""``POST /v1/submissions`` is one plain Starlette route, and the OpenAPI document has it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Match, Route

from gateway.accept import Accepted, Incoming, Source
from gateway.api import submissions
from gateway.api.app import create_app
from gateway.runtime import Runtime
from gateway.settings import Settings
from tests.conftest import DEMO_SENDER_TOKEN, sample


def settings(tmp_path: Path, config_dir: Path) -> Settings:
    # The example configuration: its public demo tokens need demo mode.
    return Settings(data_dir=tmp_path / "var", config_dir=config_dir, intake_processes=0, demo=True)


def routes_for(app: FastAPI, method: str, path: str) -> list[Route]:
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    return [
        r for r in app.router.routes if isinstance(r, Route) and r.matches(scope)[0] is Match.FULL
    ]


def test_submissions_are_served_by_the_plain_starlette_route(
    tmp_path: Path, config_dir: Path
) -> None:
    """Fails if the fast path silently stops being used: a FastAPI route for the same path
    (registered ahead, or instead) would take the requests and its overhead back."""
    app = create_app(settings(tmp_path, config_dir))
    serving = routes_for(app, "POST", submissions.PATH)
    assert serving, "nothing serves POST /v1/submissions"
    assert type(serving[0]) is Route and serving[0].endpoint is submissions.submit
    # Registered once: no FastAPI route for the same operation behind it.
    assert [r for r in serving if isinstance(r, APIRoute)] == []


def test_openapi_documents_the_submission_operation(tmp_path: Path, config_dir: Path) -> None:
    app = create_app(settings(tmp_path, config_dir))
    spec = app.openapi()
    operation = spec["paths"]["/v1/submissions"]["post"]
    assert set(operation["requestBody"]["content"]) == {
        "application/xml",
        "multipart/form-data",
        "application/zip",
    }
    assert operation["security"] == [{"bearer": []}]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    responses = operation["responses"]
    assert "202" in responses
    for status in ("400", "401", "409", "413", "415", "422", "503"):
        assert "application/problem+json" in responses[status]["content"], status
    refs = json.dumps(operation)
    for name in ("AcceptedBody", "Problem"):
        assert f"#/components/schemas/{name}" in refs and name in spec["components"]["schemas"]
    assert app.openapi() is spec  # built once
    assert "/v1/submissions/{submission_id}" in spec["paths"]


@pytest.fixture
async def served(
    tmp_path: Path, config_dir: Path
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    """The app in process: its runtime started as the lifespan would, requests over ASGI."""
    config = settings(tmp_path, config_dir)
    app = create_app(config, run_worker=False)
    runtime = await Runtime.start(config, run_worker=False, serve_api=True)
    app.state.runtime = runtime
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield runtime, client
    finally:
        await runtime.stop()


AUTH = {"Authorization": f"Bearer {DEMO_SENDER_TOKEN}"}


async def first_event(client: httpx.AsyncClient, submission_id: str) -> dict[str, Any]:
    view = (await client.get(f"/v1/submissions/{submission_id}", headers=AUTH)).json()
    event: dict[str, Any] = view["events"][0]
    assert event["kind"] == "accepted"
    return event


async def test_the_api_records_itself_as_the_source(
    served: tuple[Runtime, httpx.AsyncClient],
) -> None:
    _, client = served
    resp = await client.post(
        "/v1/submissions",
        content=sample("hundesteuer/valid/anmeldung-stuttgart.xml"),
        headers={**AUTH, "Content-Type": "application/xml"},
    )
    assert resp.status_code == 202, resp.text
    assert (await first_event(client, resp.json()["id"]))["detail"]["source"] == "api"


async def test_another_source_takes_the_same_accept_path(
    served: tuple[Runtime, httpx.AsyncClient],
) -> None:
    runtime, client = served
    sender = runtime.config.authenticate(DEMO_SENDER_TOKEN)
    assert sender is not None
    incoming = Incoming(
        sample("hundesteuer/valid/anmeldung-stuttgart.xml"),
        sender.name,
        source=Source("fit-connect", {"submission_id": "4b1c", "case_id": "77aa"}),
        # The transport addressed Nürtingen, but the header's leser (Stuttgart) comes first:
        # a transport's recipient is for messages that name none (docs/fit-connect.md).
        recipient="ags:08116049",
    )
    accepted = await runtime.accept(incoming)
    assert not accepted.duplicate
    assert (await runtime.accept(incoming)) == Accepted(accepted.id, duplicate=True)
    detail = (await first_event(client, accepted.id))["detail"]
    assert detail["source"] == "fit-connect"
    assert detail["references"] == {"submission_id": "4b1c", "case_id": "77aa"}
    assert detail["municipality"] == "08111000"
