"""One store test suite, run against every store implementation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from gateway.errors import DuplicateConflict, NotFound, UnacceptableField
from gateway.store.records import AttachmentRecord, NewDelivery, NewSubmission
from gateway.store.states import WorkState
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


def stored_attachments(new: NewSubmission) -> list[AttachmentRecord]:
    """``new``'s attachments as the store gives them back: with the name to deliver under."""
    return [replace(a, file_name=f"{i}-{a.name}") for i, a in enumerate(new.attachments, 1)]


async def test_accept_stores_everything_in_one_go(store: Store) -> None:
    new = new_submission()
    sid, created = await store.accept(new, WorkState.READY)
    assert created and sid == new.id
    view = await store.submission(sid)
    assert view.message_uuid == new.message_uuid
    assert [d.destination for d in view.deliveries] == ["dest-0", "dest-1"]
    assert {d.state for d in view.deliveries} == {"pending"}
    assert [e.kind for e in view.events] == ["accepted"]
    assert view.attachments == stored_attachments(new)
    assert view.status == "accepted"


async def test_same_uuid_same_content_returns_first_id(store: Store) -> None:
    first = new_submission()
    await store.accept(first, WorkState.READY)
    again = new_submission(first.message_uuid)
    sid, created = await store.accept(again, WorkState.READY)
    assert (sid, created) == (first.id, False)


async def test_same_uuid_other_content_conflicts_and_keeps_the_first(store: Store) -> None:
    first = new_submission()
    await store.accept(first, WorkState.READY)
    with pytest.raises(DuplicateConflict):
        await store.accept(new_submission(first.message_uuid, xml=b"<b/>"), WorkState.READY)
    view = await store.submission(first.id)
    assert len(view.deliveries) == 2


async def test_a_uuid_is_unique_per_sender(store: Store) -> None:
    first = new_submission()
    await store.accept(first, WorkState.READY)
    # Another sender's message with the same UUID (and even other content) is its own.
    other = new_submission(first.message_uuid, xml=b"<b/>", sender="other")
    assert await store.accept(other, WorkState.READY) == (other.id, True)
    # Both in one batch, too; and each sender's own duplicate still finds its first.
    third = new_submission(first.message_uuid, sender="third")
    again = new_submission(first.message_uuid, sender="other", xml=b"<b/>")
    outcomes = await asyncio.gather(
        store.accept(third, WorkState.READY), store.accept(again, WorkState.READY)
    )
    assert list(outcomes) == [(third.id, True), (other.id, False)]
    assert (await store.submission(other.id)).sender == "other"


async def test_delivery_outcomes_are_recorded_as_events(store: Store) -> None:
    new = new_submission(destinations=2)
    await store.accept(new, WorkState.READY)
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
    await store.accept(stored, WorkState.READY)
    fresh = [new_submission() for _ in range(20)]
    same_again = new_submission(stored.message_uuid)
    conflict = new_submission(stored.message_uuid, xml=b"<other/>")
    twin = new_submission(fresh[0].message_uuid)  # same UUID and content, same batch
    outcomes = await asyncio.gather(
        *(store.accept(n, WorkState.READY) for n in [*fresh, same_again, conflict, twin]),
        return_exceptions=True,
    )
    assert outcomes[:20] == [(n.id, True) for n in fresh]
    assert outcomes[20] == (stored.id, False)
    assert isinstance(outcomes[21], DuplicateConflict)
    assert outcomes[22] == (fresh[0].id, False)
    for n in fresh:
        view = await store.submission(n.id)
        assert len(view.deliveries) == 2 and view.attachments == stored_attachments(n)
    assert len((await store.submission(stored.id)).deliveries) == 2


async def test_a_conflict_inside_a_batch_of_other_content_keeps_the_first(store: Store) -> None:
    first = new_submission()
    rival = new_submission(first.message_uuid, xml=b"<b/>")
    outcomes = await asyncio.gather(
        store.accept(first, WorkState.READY),
        store.accept(rival, WorkState.READY),
        return_exceptions=True,
    )
    assert outcomes[0] == (first.id, True)
    assert isinstance(outcomes[1], DuplicateConflict)
    with pytest.raises(NotFound):
        await store.submission(rival.id)


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("author", {"author": "x" * 4001}),
        ("attachments[1].name", {"attachments": [AttachmentRecord("a\0b", "x/y", "ab" * 32, 1)]}),
        (
            "attachments[1].content_type",
            {"attachments": [AttachmentRecord("a", "x" * 1001, "ab", 1)]},
        ),
        ("message_type", {"message_type": "m" * 201}),
    ],
)
async def test_a_value_the_store_cannot_hold_is_refused_naming_the_field(
    store: Store, field: str, change: dict[str, object]
) -> None:
    bad = replace(new_submission(), **change)  # type: ignore[arg-type]
    with pytest.raises(UnacceptableField) as refused:
        await store.accept(bad, WorkState.READY)
    assert refused.value.field == field
    with pytest.raises(NotFound):
        await store.submission(bad.id)


def _refuse_poison(conn: Connection) -> None:
    # A constraint the intake limits know nothing of: the database alone refuses the row.
    if conn.dialect.name == "sqlite":
        conn.execute(
            text(
                "CREATE TRIGGER no_poison BEFORE INSERT ON submissions "
                "WHEN NEW.author = 'poison' BEGIN SELECT RAISE(ABORT, 'poison'); END"
            )
        )
    else:  # a data exception (SQLSTATE 22023), as PostgreSQL raises for a NUL or a long value
        conn.execute(
            text(
                "CREATE FUNCTION no_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.author = 'poison' THEN RAISE EXCEPTION 'poison' USING ERRCODE = '22023';"
                " END IF; RETURN NEW; END $$"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER no_poison BEFORE INSERT ON submissions "
                "FOR EACH ROW EXECUTE FUNCTION no_poison()"
            )
        )


async def test_a_row_the_database_refuses_fails_only_itself_not_its_batch(store: Store) -> None:
    await store.db.write(_refuse_poison)
    honest = [new_submission() for _ in range(30)]
    poison = [replace(new_submission(), author="poison") for _ in range(3)]
    mixed = [*honest[:10], poison[0], *honest[10:20], poison[1], *honest[20:], poison[2]]
    outcomes = await asyncio.gather(
        *(store.accept(n, WorkState.READY) for n in mixed), return_exceptions=True
    )
    by_id = dict(zip([n.id for n in mixed], outcomes, strict=True))
    assert [by_id[n.id] for n in honest] == [(n.id, True) for n in honest]
    assert all(isinstance(by_id[n.id], UnacceptableField) for n in poison)
    for n in poison:
        with pytest.raises(NotFound):
            await store.submission(n.id)
