"""One store test suite, run against every store implementation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.errors import DuplicateConflict, NotFound
from gateway.store.records import AttachmentRecord, NewDelivery, NewSubmission
from gateway.store.store import Attempt, Store
from tests.contract.backends import STORES


@pytest.fixture(
    params=[
        pytest.param(name, marks=[pytest.mark.services] if services else [])
        for name, (_, services) in sorted(STORES.items())
    ]
)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    make_store, _ = STORES[request.param]
    async with make_store(tmp_path) as s:
        yield s


def new_submission(
    message_uuid: str | None = None,
    xml: bytes = b"<a/>",
    destinations: int = 2,
    sender: str = "portal",
) -> NewSubmission:
    sid = str(uuid.uuid4())
    return NewSubmission(
        id=sid,
        message_uuid=message_uuid or str(uuid.uuid4()),
        sender=sender,
        content_sha256=str(hash(xml)),
        message_type="hundesteuer.anmeldung.0101",
        schema_set="hundesteuer-1.0",
        municipality="08111000",
        recipient="ags:08111000",
        author="efa:x",
        leika=None,
        config_version="v1",
        xml=xml,
        deliveries=[
            NewDelivery(str(uuid.uuid4()), f"dest-{i}", "filedrop") for i in range(destinations)
        ],
        attachments=[AttachmentRecord("plan.pdf", "application/pdf", "ab" * 32, 12)],
    )


async def test_accept_stores_everything_in_one_go(store: Store) -> None:
    new = new_submission()
    sid, created = await store.accept(new, "ready")
    assert created and sid == new.id
    view = await store.submission(sid)
    assert view.message_uuid == new.message_uuid
    assert [d.destination for d in view.deliveries] == ["dest-0", "dest-1"]
    assert {d.state for d in view.deliveries} == {"pending"}
    assert [e.kind for e in view.events] == ["accepted"]
    assert view.attachments == new.attachments
    assert view.status == "accepted"


async def test_same_uuid_same_content_returns_first_id(store: Store) -> None:
    first = new_submission()
    await store.accept(first, "ready")
    again = new_submission(first.message_uuid)
    sid, created = await store.accept(again, "ready")
    assert (sid, created) == (first.id, False)


async def test_same_uuid_other_content_conflicts_and_keeps_the_first(store: Store) -> None:
    first = new_submission()
    await store.accept(first, "ready")
    with pytest.raises(DuplicateConflict):
        await store.accept(new_submission(first.message_uuid, xml=b"<b/>"), "ready")
    view = await store.submission(first.id)
    assert len(view.deliveries) == 2


async def test_a_uuid_is_unique_per_sender(store: Store) -> None:
    first = new_submission()
    await store.accept(first, "ready")
    # Another sender's message with the same UUID (and even other content) is its own.
    other = new_submission(first.message_uuid, xml=b"<b/>", sender="other")
    assert await store.accept(other, "ready") == (other.id, True)
    # Both in one batch, too; and each sender's own duplicate still finds its first.
    third = new_submission(first.message_uuid, sender="third")
    again = new_submission(first.message_uuid, sender="other", xml=b"<b/>")
    outcomes = await asyncio.gather(store.accept(third, "ready"), store.accept(again, "ready"))
    assert outcomes == [(third.id, True), (other.id, False)]
    assert (await store.submission(other.id)).sender == "other"


async def test_delivery_outcomes_are_recorded_as_events(store: Store) -> None:
    new = new_submission(destinations=2)
    await store.accept(new, "ready")
    ok = await store.job(new.deliveries[0].id)
    bad = await store.job(new.deliveries[1].id)
    assert ok is not None and bad is not None and ok.xml == b"<a/>"
    await store.record_delivered(ok, "AZ-1", "fine", Attempt(1, None))
    await store.record_retry(bad, "down", 2.0)
    await store.record_dead(bad, "gave up")
    view = await store.submission(new.id)
    kinds = [e.kind for e in view.events]
    assert kinds == [
        "accepted",
        "delivery.attempt",
        "delivery.delivered",
        "delivery.retry",
        "delivery.dead",
    ]
    states = {d.destination: (d.state, d.receipt_reference, d.problem) for d in view.deliveries}
    assert states == {"dest-0": ("delivered", "AZ-1", None), "dest-1": ("dead", None, "gave up")}
    assert view.status == "partially-dead"
    await store.record_replayed([bad.delivery_id])
    view = await store.submission(new.id)
    assert view.events[-1].kind == "delivery.replayed"
    assert {d.state for d in view.deliveries} == {"delivered", "pending"}


async def test_unknown_submission_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.submission(str(uuid.uuid4()))
    assert await store.job(str(uuid.uuid4())) is None


async def test_concurrent_accepts_share_commits_and_settle_each_on_its_own(store: Store) -> None:
    stored = new_submission()
    await store.accept(stored, "ready")
    fresh = [new_submission() for _ in range(20)]
    same_again = new_submission(stored.message_uuid)
    conflict = new_submission(stored.message_uuid, xml=b"<other/>")
    twin = new_submission(fresh[0].message_uuid)  # same UUID and content, same batch
    outcomes = await asyncio.gather(
        *(store.accept(n, "ready") for n in [*fresh, same_again, conflict, twin]),
        return_exceptions=True,
    )
    assert outcomes[:20] == [(n.id, True) for n in fresh]
    assert outcomes[20] == (stored.id, False)
    assert isinstance(outcomes[21], DuplicateConflict)
    assert outcomes[22] == (fresh[0].id, False)
    for n in fresh:
        view = await store.submission(n.id)
        assert len(view.deliveries) == 2 and view.attachments == n.attachments
    assert len((await store.submission(stored.id)).deliveries) == 2


async def test_a_conflict_inside_a_batch_of_other_content_keeps_the_first(store: Store) -> None:
    first = new_submission()
    rival = new_submission(first.message_uuid, xml=b"<b/>")
    outcomes = await asyncio.gather(
        store.accept(first, "ready"), store.accept(rival, "ready"), return_exceptions=True
    )
    assert outcomes[0] == (first.id, True)
    assert isinstance(outcomes[1], DuplicateConflict)
    with pytest.raises(NotFound):
        await store.submission(rival.id)
