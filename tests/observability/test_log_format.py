"""The formatters and settings of gateway.telemetry.logs, in process."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from gateway.settings import Settings
from gateway.telemetry.logs import configure, fields


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_settings_read_level_format_access_log_and_metrics_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XOEV_GATEWAY_LOG_LEVEL", "warning")
    monkeypatch.setenv("XOEV_GATEWAY_LOG_FORMAT", "text")
    monkeypatch.setenv("XOEV_GATEWAY_ACCESS_LOG", "true")
    monkeypatch.setenv("XOEV_GATEWAY_METRICS_PORT", "9464")
    settings = Settings()
    assert (settings.log_level, settings.log_format) == ("WARNING", "text")
    assert settings.access_log and settings.metrics_port == 9464
    assert Settings.model_fields["log_format"].default == "auto"
    assert Settings.model_fields["metrics_port"].default is None


@pytest.mark.usefixtures("restore_logging")
def test_auto_is_json_when_stderr_is_no_terminal_and_the_level_filters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure("WARNING", "auto")
    log = logging.getLogger("xoev_gateway.test")
    log.info("not shown")
    log.warning("retry %s", "scheduled", extra=fields(delivery_id="d-1", skipped=None))
    (line,) = capsys.readouterr().err.splitlines()
    got = json.loads(line)
    assert got["msg"] == "retry scheduled" and got["level"] == "warning"
    assert got["delivery_id"] == "d-1" and "skipped" not in got
    assert got["logger"] == "xoev_gateway.test"


@pytest.mark.usefixtures("restore_logging")
def test_text_format_with_fields_and_exception(capsys: pytest.CaptureFixture[str]) -> None:
    configure("INFO", "text")
    log = logging.getLogger("xoev_gateway.test")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed", extra=fields(destination="a b", attempt=2))
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert " ERROR   xoev_gateway.test: failed  " in first
    assert 'destination="a b" attempt=2' in first
    assert "ValueError: boom" in err


async def test_failed_authentications_are_logged_until_throttled_then_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import httpx
    from starlette.responses import PlainTextResponse
    from starlette.types import Receive, Scope, Send

    from gateway.api.limits import AuthFailureThrottle
    from gateway.telemetry.logs import FIELDS

    async def refusing(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("no", status_code=401)(scope, receive, send)

    app = AuthFailureThrottle(refusing, per_minute=2)
    transport = httpx.ASGITransport(app=app)
    caplog.set_level(logging.INFO, logger="xoev_gateway.api")
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        statuses = [
            (await client.get("/v1/x", headers={"Authorization": "Bearer Qxsecret"})).status_code
            for _ in range(5)
        ]
    assert statuses == [401, 401, 429, 429, 429]
    events = [getattr(r, FIELDS)["event"] for r in caplog.records]
    assert events == ["auth.failed", "auth.failed", "auth.throttled"]
    assert "Qxsecret" not in caplog.text
