"""A nachrichtenUUID is unique per sender: another sender can neither block one nor learn
that it exists, and each sender still gets its own idempotency and conflicts."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import sample
from tests.support.access import AccessGateway, access_gateway, with_author
from tests.support.messages import UUID_ELEMENT

pytestmark = pytest.mark.slow

KOELN = "bewohnerparken/valid/antrag-koeln.xml"


def with_uuid(body: bytes, message_uuid: str) -> bytes:
    return UUID_ELEMENT.sub(rb"\g<1>" + message_uuid.encode() + rb"\g<2>", body, count=1)


@pytest.fixture
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AccessGateway]:
    with access_gateway(tmp_path_factory.mktemp("uuid")) as gateway:
        yield gateway


def test_another_sender_can_neither_block_nor_discover_a_uuid(gw: AccessGateway) -> None:
    genuine = sample(KOELN)
    # efa-other may send for Köln under its own author; its content differs from the genuine.
    rival = with_author(genuine, "efa:other-online")
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    with httpx.Client(base_url=gw.url, timeout=30) as client:

        def submit(who: str, body: bytes) -> httpx.Response:
            return client.post("/v1/submissions", content=body, headers=gw.xml(who))

        # 1. efa-other takes the UUID first; the rightful sender is not blocked (no 409).
        squatted = submit("efa-other", with_uuid(rival, first))
        rightful = submit("parken-koeln", with_uuid(genuine, first))
        assert squatted.status_code == 202 and rightful.status_code == 202, rightful.text
        assert squatted.json()["id"] != rightful.json()["id"]

        # 2. The other way round: a UUID the rightful sender used first is not revealed to
        #    another sender; its submission is simply its own (202, its own id, no 409).
        owned = submit("parken-koeln", with_uuid(genuine, second))
        probe = submit("efa-other", with_uuid(rival, second))
        fresh = submit("efa-other", with_uuid(rival, str(uuid.uuid4())))
        assert (owned.status_code, probe.status_code, fresh.status_code) == (202, 202, 202)
        assert probe.json()["id"] not in (owned.json()["id"], rightful.json()["id"])
        assert probe.json().keys() == fresh.json().keys()
        assert probe.json()["status"] == fresh.json()["status"] == "accepted"

        # 3. Each sender's own idempotency and conflicts still hold.
        again = submit("parken-koeln", with_uuid(genuine, first))
        assert (again.status_code, again.json()["id"]) == (202, rightful.json()["id"])
        changed = submit("parken-koeln", with_uuid(genuine.replace(b"Kaya", b"Koch"), first))
        assert changed.status_code == 409, changed.text
        assert changed.json()["type"].endswith("/duplicate-conflict")

        # 4. Neither reads the other's submission.
        assert (
            client.get(rightful.headers["location"], headers=gw.auth("efa-other")).status_code
            == 404
        )
        assert (
            client.get(squatted.headers["location"], headers=gw.auth("parken-koeln")).status_code
            == 404
        )

        # 5. Both are delivered, with their own delivery ids, each naming its real sender.
        mine = gw.settle(client, rightful.headers["location"], "parken-koeln")
        theirs = gw.settle(client, squatted.headers["location"], "efa-other")
    assert {d["id"] for d in mine["deliveries"]}.isdisjoint(d["id"] for d in theirs["deliveries"])
    senders = {}
    for path in gw.out("koeln-steuer").glob("*.json"):
        meta = json.loads(path.read_text())
        if meta["message_uuid"] == first:
            senders[meta["delivery_id"]] = meta["sender"]
    assert sorted(senders.values()) == ["efa-other", "parken-koeln"]
    assert ("parken-koeln", first) in gw.stored_submissions()
    assert ("efa-other", first) in gw.stored_submissions()
