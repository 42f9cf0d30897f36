"""The ``http`` adapter against the reference Fachverfahren, run as a real process."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.http import HttpAdapter, HttpSettings
from gateway.testing.adapter_contract import (
    RETRY_AFTER_SECONDS,
    AdapterContract,
    FaultMode,
    TargetCase,
    WorkerHarness,
)
from tests.support.certs import Pki, make_pki
from tests.support.gateway_process import free_port
from tests.support.mapped import FORMATS, mapped_delivery, previewed
from tests.support.servers import ReferenceFachverfahren, reference_fachverfahren

FAULTS = {"transient": "5xx", "permanent": "4xx", "hang": "slow", "throttle": "429"}


@pytest.fixture(scope="module")
def plain_fv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceFachverfahren]:
    with reference_fachverfahren(tmp_path_factory.mktemp("fv")) as fv:
        yield fv


@pytest.fixture
def fv(plain_fv: ReferenceFachverfahren) -> ReferenceFachverfahren:
    plain_fv.reset()
    return plain_fv


class ReferenceTarget:
    def __init__(self, fv: ReferenceFachverfahren, **settings: Any) -> None:
        self.fv = fv
        self._settings = {"url": f"{fv.url}/cases", **settings}

    def settings(self) -> Mapping[str, Any]:
        return self._settings

    def secrets(self) -> Mapping[str, str]:
        return {}

    async def count_cases(self) -> int:
        return int(self.fv.state()["cases"])

    async def cases(self) -> list[TargetCase]:
        return [TargetCase(content=c["body"]) for c in self.fv.cases()]

    async def fail(self, mode: FaultMode, count: int) -> None:
        # A hung answer comes after the worker's timeout (2 s) but before teardown.
        self.fv.fail(
            FAULTS[mode], count, slow_seconds=3, retry_after_seconds=RETRY_AFTER_SECONDS
        )


class TestHttpAdapterContract(AdapterContract):
    adapter = "http"
    attachments = ()  # the envelope lists attachments; their content is not sent

    @pytest.fixture
    def target(self, fv: ReferenceFachverfahren) -> ReferenceTarget:
        return ReferenceTarget(fv)

    def check_receipt(self, receipt: Any) -> None:
        assert receipt.reference.startswith("AZ-")


async def deliver_one(tmp_path: Path, settings: Mapping[str, Any], **harness: Any) -> Any:
    async with WorkerHarness(tmp_path / "gw", "http", settings, **harness) as h:
        return await h.settled(await h.submit())


async def test_xml_body_and_reference_from_header(
    tmp_path: Path, fv: ReferenceFachverfahren
) -> None:
    settings = {"url": f"{fv.url}/cases", "body": "xml", "reference_header": "Location"}
    outcome = await deliver_one(tmp_path, settings)
    assert outcome.state == "delivered"
    (case,) = fv.cases()
    assert outcome.receipt.reference == f"/cases/{case['case_number']}"
    assert case["content_type"] == "application/xml"
    assert case["body"].startswith("<?xml") and case["idempotency_key"] == outcome.delivery_id
    # The authenticated sender travels along, whatever the message's autor claims.
    assert case["sender"] == "contract-kit"


async def test_json_body_is_the_document(tmp_path: Path, fv: ReferenceFachverfahren) -> None:
    outcome = await deliver_one(tmp_path, {"url": f"{fv.url}/cases"})
    (case,) = fv.cases()
    assert case["content_type"] == "application/json"
    assert '"delivery_id": "' + outcome.delivery_id in case["body"]


async def test_429_is_retried_after_retry_after(tmp_path: Path, fv: ReferenceFachverfahren) -> None:
    fv.fail("429", 1, retry_after_seconds=1)
    outcome = await deliver_one(tmp_path, {"url": f"{fv.url}/cases"})
    assert outcome.state == "delivered" and outcome.attempts == 2
    assert fv.state()["cases"] == 1


async def test_connection_refused_is_transient_until_attempts_run_out(tmp_path: Path) -> None:
    settings = {"url": f"http://127.0.0.1:{free_port()}/cases"}
    outcome = await deliver_one(tmp_path, settings, max_attempts=2)
    assert outcome.state == "dead" and outcome.attempts == 2
    assert "gave up after 2 attempts: connection failed" in outcome.problem


async def test_persistent_5xx_is_dead_after_max_attempts(
    tmp_path: Path, fv: ReferenceFachverfahren
) -> None:
    fv.fail("5xx")
    outcome = await deliver_one(tmp_path, {"url": f"{fv.url}/cases"}, max_attempts=3)
    assert outcome.state == "dead" and outcome.attempts == 3
    assert outcome.events.count("delivery.retry") == 2


# --- auth ---------------------------------------------------------------------------------

PASSWORD = "s3cret-Passw0rd"
TOKEN = "static-bearer-token-4711"
CLIENT_SECRET = "client-secret-0815"


@pytest.fixture(scope="module")
def auth_fv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceFachverfahren]:
    config = {
        "basic_users": {"gateway": PASSWORD},
        "bearer_tokens": [TOKEN],
        "oauth_clients": {"xoev-gateway": CLIENT_SECRET},
    }
    with reference_fachverfahren(tmp_path_factory.mktemp("fv-auth"), config) as fv:
        yield fv


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FV_PASSWORD", PASSWORD)
    monkeypatch.setenv("FV_TOKEN", TOKEN)
    monkeypatch.setenv("FV_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("FV_WRONG", "not-the-password")


@pytest.mark.parametrize(
    ("auth", "principal"),
    [
        ({"type": "basic", "username": "gateway", "password_env": "FV_PASSWORD"}, "basic:gateway"),
        ({"type": "bearer", "token_env": "FV_TOKEN"}, "bearer"),
    ],
)
async def test_basic_and_bearer_auth(
    tmp_path: Path,
    auth_fv: ReferenceFachverfahren,
    secrets_env: None,
    auth: dict[str, str],
    principal: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    auth_fv.reset()
    caplog.set_level(logging.DEBUG)
    outcome = await deliver_one(tmp_path, {"url": f"{auth_fv.url}/cases", "auth": auth})
    assert outcome.state == "delivered", outcome.problem
    assert [c["auth"] for c in auth_fv.cases()] == [principal]
    assert PASSWORD not in caplog.text and TOKEN not in caplog.text


async def test_oauth2_token_is_fetched_once_and_cached(
    tmp_path: Path, auth_fv: ReferenceFachverfahren, secrets_env: None
) -> None:
    auth_fv.reset()
    auth = {
        "type": "oauth2",
        "token_url": f"{auth_fv.url}/oauth/token",
        "client_id": "xoev-gateway",
        "client_secret_env": "FV_CLIENT_SECRET",
    }
    async with WorkerHarness(
        tmp_path / "gw", "http", {"url": f"{auth_fv.url}/cases", "auth": auth}
    ) as h:
        outcomes = [await h.settled(await h.submit()) for _ in range(3)]
    assert [o.state for o in outcomes] == ["delivered"] * 3
    assert auth_fv.state() == {
        "cases": 3,
        "repeats": 0,
        "tokens_issued": 1,
        "fault": "none",
    }
    assert {c["auth"] for c in auth_fv.cases()} == {"oauth2:xoev-gateway"}


async def test_wrong_credentials_are_permanent_and_secrets_stay_out_of_problems(
    tmp_path: Path, auth_fv: ReferenceFachverfahren, secrets_env: None
) -> None:
    auth_fv.reset()
    auth = {"type": "basic", "username": "gateway", "password_env": "FV_WRONG"}
    outcome = await deliver_one(tmp_path, {"url": f"{auth_fv.url}/cases", "auth": auth})
    assert outcome.state == "dead" and outcome.attempts == 1
    assert "HTTP 401" in outcome.problem and "not-the-password" not in outcome.problem


async def test_missing_secret_variable_is_named_and_dead(
    tmp_path: Path, auth_fv: ReferenceFachverfahren, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FV_UNSET", raising=False)
    auth = {"type": "bearer", "token_env": "FV_UNSET"}
    outcome = await deliver_one(tmp_path, {"url": f"{auth_fv.url}/cases", "auth": auth})
    assert outcome.state == "dead"
    assert "FV_UNSET is not set" in outcome.problem


def test_a_literal_secret_is_not_a_variable_name() -> None:
    from pydantic import ValidationError

    from adapters.http import HttpSettings

    with pytest.raises(ValidationError, match="password_env"):
        HttpSettings.model_validate(
            {"url": "http://x", "auth": {"type": "basic", "username": "u", "password_env": "a b!"}}
        )
    with pytest.raises(ValidationError, match="password"):
        HttpSettings.model_validate(
            {"url": "http://x", "auth": {"type": "basic", "username": "u", "password": "p"}}
        )


# --- mutual TLS ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def mtls_fv(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[ReferenceFachverfahren]:
    import ssl

    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    with reference_fachverfahren(
        tmp_path_factory.mktemp("fv-mtls"),
        tls=(pki.server_cert, pki.server_key, pki.ca),
        client=httpx.Client(verify=ctx, timeout=10),
    ) as fv:
        yield fv


async def test_mutual_tls_with_client_certificate(
    tmp_path: Path, mtls_fv: ReferenceFachverfahren, pki: Pki
) -> None:
    mtls_fv.reset()
    settings = {
        "url": f"{mtls_fv.url}/cases",
        "ca_file": str(pki.ca),
        "client_cert": str(pki.client_cert),
        "client_key": str(pki.client_key),
    }
    outcome = await deliver_one(tmp_path, settings)
    assert outcome.state == "delivered", outcome.problem
    assert outcome.receipt.reference.startswith("AZ-")


async def test_mutual_tls_without_client_certificate_is_refused(
    tmp_path: Path, mtls_fv: ReferenceFachverfahren, pki: Pki
) -> None:
    mtls_fv.reset()
    settings = {"url": f"{mtls_fv.url}/cases", "ca_file": str(pki.ca)}
    outcome = await deliver_one(tmp_path, settings, max_attempts=1)
    assert outcome.state == "dead"
    assert mtls_fv.state()["cases"] == 0


@pytest.mark.parametrize("fmt", FORMATS)
async def test_body_mapped_is_the_previewed_rendering(fv: ReferenceFachverfahren, fmt: str) -> None:
    adapter = HttpAdapter(HttpSettings(url=f"{fv.url}/cases", body="mapped"))
    try:
        await adapter.deliver(mapped_delivery(fmt))
    finally:
        await adapter.aclose()
    (case,) = fv.cases()
    payload = previewed(fmt)[1]
    assert case["content_type"] == payload.media_type
    assert case["body"].encode() == payload.body
