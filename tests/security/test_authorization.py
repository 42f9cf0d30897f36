"""Senders may send only what their grants cover; admins are not senders.

One gateway (``serve``, real HTTP) with three senders and an admin whose tokens come from
``xoev-gateway token new`` (see ``tests/support/access.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import sample
from tests.support.access import ADMIN, SENDERS, AccessGateway, access_gateway, with_author
from tests.support.messages import with_new_uuid

pytestmark = pytest.mark.slow

HUND = "hundesteuer/valid/"
PARKEN = "bewohnerparken/valid/"
FORGED = "efa:bewohnerparken-online"  # the genuine Köln parking service's author kennung

# sender, sample, author to claim (None: the sample's own), expected status, refused rule
MATRIX = [
    ("hund-bw", HUND + "anmeldung-stuttgart.xml", None, 202, None),
    ("hund-bw", HUND + "anmeldung-esslingen.xml", None, 202, None),
    ("hund-bw", HUND + "anmeldung-muenchen.xml", None, 403, "regions"),
    ("hund-bw", HUND + "abmeldung-muenchen.xml", None, 403, "services"),
    ("hund-bw", PARKEN + "antrag-stuttgart.xml", None, 403, "services"),
    ("hund-bw", HUND + "anmeldung-stuttgart.xml", "efa:bewohnerparken-online", 403, "authors"),
    ("parken-koeln", PARKEN + "antrag-koeln.xml", None, 202, None),
    ("parken-koeln", PARKEN + "antrag-koeln.xml", "efa:anything", 202, None),
    ("parken-koeln", PARKEN + "antrag-muenchen.xml", None, 403, "regions"),
    ("parken-koeln", PARKEN + "antrag-stuttgart.xml", None, 403, "regions"),
    ("parken-koeln", HUND + "anmeldung-koeln.xml", None, 403, "services"),
    # The forged author: a Köln message claiming another online service's kennung.
    ("efa-other", PARKEN + "antrag-koeln.xml", None, 403, "authors"),
    ("efa-other", HUND + "anmeldung-koeln.xml", FORGED, 403, "authors"),
    ("efa-other", PARKEN + "antrag-koeln.xml", "efa:other-online", 202, None),
    ("efa-other", HUND + "anmeldung-koeln.xml", "efa:other-online", 202, None),
    ("efa-other", HUND + "anmeldung-stuttgart.xml", "efa:other-online", 403, "regions"),
]

ADMIN_ENDPOINTS = [
    ("GET", "/v1/admin/dead-letters", {}),
    ("POST", "/v1/admin/dead-letters/replay", {"json": {"delivery_ids": []}}),
    ("POST", "/v1/admin/config/reload", {}),
    ("POST", "/v1/admin/mapping/preview", {"content": sample(HUND + "anmeldung-stuttgart.xml")}),
    ("GET", "/v1/admin/audit", {}),
]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AccessGateway]:
    with access_gateway(tmp_path_factory.mktemp("authorization")) as gateway:
        yield gateway


def test_the_grant_matrix_refuses_with_the_rule_and_stores_nothing(gw: AccessGateway) -> None:
    accepted: dict[str, tuple[str, str]] = {}  # message uuid -> (sender, location)
    refused: list[str] = []
    with httpx.Client(base_url=gw.url, timeout=30) as client:
        for sender, relative, author, status, rule in MATRIX:
            body = sample(relative)
            if author is not None:
                body = with_author(body, author)
            uuid, body = with_new_uuid(body)
            resp = client.post("/v1/submissions", content=body, headers=gw.xml(sender))
            case = f"{sender} {relative} {author}"
            assert resp.status_code == status, (case, resp.text)
            if status == 202:
                accepted[uuid] = (sender, resp.headers["location"])
                continue
            refused.append(uuid)
            assert resp.headers["content-type"] == "application/problem+json", case
            problem = resp.json()
            assert problem["type"] == "https://xoev-gateway.de/problems/not-permitted", case
            assert problem["status"] == 403 and problem["rule"] == rule, (case, problem)
            assert f"sender '{sender}'" in problem["detail"] and rule in problem["detail"], case

        # Nothing of a refused message is stored; each accepted one is, under its sender.
        stored = gw.stored_submissions()
        assert sorted(stored) == sorted((s, u) for u, (s, _) in accepted.items())
        assert not {u for _, u in stored} & set(refused)

        # The authenticated sender travels with each delivery to the Fachverfahren.
        for uuid, (sender, location) in accepted.items():
            view = gw.settle(client, location, sender)
            for delivery in view["deliveries"]:
                meta = json.loads(
                    (gw.out(delivery["destination"]) / f"{delivery['id']}.json").read_text()
                )
                assert (meta["message_uuid"], meta["sender"]) == (uuid, sender)


def test_admin_credentials_cannot_submit(gw: AccessGateway) -> None:
    _, body = with_new_uuid(sample(HUND + "anmeldung-stuttgart.xml"))
    before = len(gw.stored_submissions())
    resp = httpx.post(f"{gw.url}/v1/submissions", content=body, headers=gw.xml(ADMIN), timeout=30)
    assert resp.status_code == 403
    assert resp.json()["type"] == "https://xoev-gateway.de/problems/not-a-sender"
    assert len(gw.stored_submissions()) == before


@pytest.mark.parametrize(("method", "path", "extra"), ADMIN_ENDPOINTS)
def test_admin_endpoints_take_admin_credentials_only(
    gw: AccessGateway, method: str, path: str, extra: dict[str, object]
) -> None:
    with httpx.Client(base_url=gw.url, timeout=30) as client:

        def call(headers: dict[str, str]) -> httpx.Response:
            return client.request(method, path, headers=headers, **extra)  # type: ignore[arg-type]

        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            resp = call(headers)
            assert resp.status_code == 401, resp.text
            assert resp.headers["content-type"] == "application/problem+json"
        for sender in SENDERS:
            resp = call(gw.auth(sender))
            assert resp.status_code == 403, (sender, resp.text)
            assert resp.json()["type"] == "https://xoev-gateway.de/problems/admin-only"
        resp = call(gw.auth(ADMIN))
        assert resp.status_code == 200, resp.text


def test_a_submission_is_read_by_its_sender_and_admins_only(gw: AccessGateway) -> None:
    _, body = with_new_uuid(sample(PARKEN + "antrag-koeln.xml"))
    with httpx.Client(base_url=gw.url, timeout=30) as client:
        location = client.post(
            "/v1/submissions", content=body, headers=gw.xml("parken-koeln")
        ).headers["location"]
        assert client.get(location, headers=gw.auth("parken-koeln")).status_code == 200
        assert client.get(location, headers=gw.auth(ADMIN)).status_code == 200
        for stranger in ("hund-bw", "efa-other"):
            resp = client.get(location, headers=gw.auth(stranger))
            assert resp.status_code == 404, stranger
        assert client.get(location).status_code == 401
