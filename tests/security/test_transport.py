"""TLS and mTLS terminated by the gateway itself (with a throw-away CA), per-sender rate
and byte limits, and slowing down failed authentication: real processes, real HTTP."""

from __future__ import annotations

import functools
import hashlib
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.routing.config import load_config
from tests.conftest import DEMO_ADMIN_TOKEN, sample
from tests.support.certs import Pki, make_pki
from tests.support.deployments import ADMIN, KOELN, SENDER, embedded, write_config
from tests.support.gateway_process import GatewayProcess, gateway_env
from tests.support.messages import with_new_uuid
from tests.support.processes import healthy

pytestmark = pytest.mark.slow

XML = {"Content-Type": "application/xml"}


def fingerprint(pem: Path) -> str:
    der = ssl.PEM_cert_to_DER_cert(pem.read_text())
    return "sha256:" + hashlib.sha256(der).hexdigest()


def context(pki: Pki, *, client_cert: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if client_cert:
        ctx.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return ctx


class TlsGateway(GatewayProcess):
    """``serve`` over HTTPS: ready when ``/healthz`` answers, checked with ``context``."""

    def __init__(self, env: dict[str, str], log: Path, context: ssl.SSLContext) -> None:
        super().__init__("serve", env, log)
        self.ready = functools.partial(healthy, verify=context)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


def tls_gateway(tmp_path: Path, pki: Pki, *, mtls: bool, extra: str = "") -> Iterator[TlsGateway]:
    config = write_config(tmp_path / "config", "retention: {}\n", extra)
    settings = {
        "XOEV_GATEWAY_TLS_CERTFILE": str(pki.server_cert),
        "XOEV_GATEWAY_TLS_KEYFILE": str(pki.server_key),
    }
    if mtls:
        settings["XOEV_GATEWAY_TLS_CLIENT_CA"] = str(pki.ca)
    env = gateway_env(tmp_path / "data", config, **settings)
    proc = TlsGateway(env, tmp_path / "serve.log", context(pki, client_cert=mtls))
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def test_tls_serves_https_only(tmp_path: Path, pki: Pki) -> None:
    for gw in tls_gateway(tmp_path, pki, mtls=False):
        ctx = context(pki, client_cert=False)
        with httpx.Client(base_url=gw.url, verify=ctx, timeout=30) as client:
            resp = client.post(
                "/v1/submissions",
                content=with_new_uuid(sample(KOELN))[1],
                headers={**SENDER, **XML},
            )
            assert resp.status_code == 202, resp.text
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{gw.port}/healthz", timeout=5)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{gw.url}/healthz", timeout=5)  # the system CAs do not know ours


def test_mtls_requires_a_client_certificate_and_maps_it_to_a_sender(
    tmp_path: Path, pki: Pki
) -> None:
    mapping = f'client_certificates:\n  "{fingerprint(pki.client_cert)}": efa-portal\n'
    for gw in tls_gateway(tmp_path, pki, mtls=True, extra=mapping):
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{gw.url}/healthz", verify=context(pki, client_cert=False), timeout=5)

        with httpx.Client(base_url=gw.url, verify=context(pki, client_cert=True)) as client:
            # The certificate alone authenticates as the sender it is mapped to.
            resp = client.post(
                "/v1/submissions", content=with_new_uuid(sample(KOELN))[1], headers=XML
            )
            assert resp.status_code == 202, resp.text
            location = resp.headers["location"]
            assert client.get(location).status_code == 200
            # A token of another sender on this connection is refused.
            other = client.get(location, headers={"Authorization": f"Bearer {DEMO_ADMIN_TOKEN}"})
            assert other.status_code == 401
            assert "different senders" in other.json()["detail"]
            assert client.get(location, headers=SENDER).status_code == 200


def test_client_certificate_by_subject_and_unknown_sender_refused(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config", "retention: {}\n", 'client_certificates:\n  "CN=client": efa-portal\n'
    )
    loaded = load_config(config)
    sender = loaded.certificate_sender("sha256:00", "CN=client")
    assert sender is not None and sender.name == "efa-portal"
    assert loaded.certificate_sender("sha256:00", "CN=other") is None
    (config / "retention.yaml").write_text('client_certificates:\n  "CN=client": nobody\n')
    with pytest.raises(Exception, match="unknown sender 'nobody'"):
        load_config(config)


async def test_a_burst_over_the_sender_limits_gets_429_with_retry_after(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config",
        "limits:\n  senders:\n    efa-portal: {requests: 5, window_seconds: 60}\n",
    )
    async with embedded(tmp_path, config) as gw:
        with httpx.Client(base_url=gw.url, timeout=30) as client:
            answers = [
                client.post(
                    "/v1/submissions",
                    content=with_new_uuid(sample(KOELN))[1],
                    headers={**SENDER, **XML},
                )
                for _ in range(8)
            ]
            assert [a.status_code for a in answers] == [202] * 5 + [429] * 3
            limited = answers[-1]
            assert limited.headers["content-type"] == "application/problem+json"
            assert 1 <= int(limited.headers["retry-after"]) <= 12  # one request's refill
            assert limited.json()["type"] == "https://xoev-gateway.de/problems/rate-limited"
            assert "5 requests per 60 s" in limited.json()["detail"]
            # Other senders have their own budget.
            assert client.get("/v1/admin/dead-letters", headers=ADMIN).status_code == 200

            # The byte cap: one large upload spends it, the next is refused.
            (config / "retention.yaml").write_text(
                "limits:\n  senders:\n    efa-portal: {bytes: 1000000, window_seconds: 60}\n"
            )
            assert client.post("/v1/admin/config/reload", headers=ADMIN).status_code == 200
            big = client.post(
                "/v1/submissions",
                files={
                    "message": ("m.xml", with_new_uuid(sample(KOELN))[1], "application/xml"),
                    "anlage": ("a.pdf", b"%PDF" + b"0" * 1_500_000, "application/pdf"),
                },
                headers=SENDER,
            )
            assert big.status_code == 202, big.text
            after = client.post(
                "/v1/submissions",
                content=with_new_uuid(sample(KOELN))[1],
                headers={**SENDER, **XML},
            )
            assert after.status_code == 429
            assert "1000000 bytes per 60 s" in after.json()["detail"]
            assert int(after.headers["retry-after"]) >= 30  # 0.5 MB of debt at 1 MB/min


async def test_repeated_failed_authentication_is_slowed_down(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", "retention: {}\n")
    async with embedded(tmp_path, config, XOEV_GATEWAY_AUTH_FAILURES_PER_MINUTE="5") as gw:
        with httpx.Client(base_url=gw.url, timeout=30) as client:
            wrong = {"Authorization": "Bearer guessed-token"}
            statuses = [
                client.get("/v1/submissions/x", headers=wrong).status_code for _ in range(7)
            ]
            assert statuses == [401] * 5 + [429] * 2
            slowed = client.get("/v1/submissions/x", headers=SENDER)
            assert slowed.status_code == 429
            assert 50 <= int(slowed.headers["retry-after"]) <= 60
            assert "failed authentications" in slowed.json()["detail"]
