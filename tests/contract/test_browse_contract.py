"""The console's reads (gateway/store/browse.py) on every store: keyset pages cover each
matching submission exactly once, newest first, under every filter and both state paths."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.errors import NotFound
from gateway.store import browse
from gateway.store.browse import Browser, Cursor, SubmissionFilter
from gateway.store.records import NewDelivery
from gateway.store.states import DeliveryState, WorkState
from gateway.store.store import Attempt, Store
from tests.contract.backends import STORES
from tests.contract.test_store_contract import new_submission


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


async def fill(store: Store) -> list[tuple[str, str, str]]:
    """21 submissions: (id, municipality, sender); every third one's delivery dead."""
    made = []
    for n in range(21):
        municipality = "08111000" if n % 2 else "09162000"
        sender = f"portal-{n % 3}"
        new = replace(
            new_submission(),
            municipality=municipality,
            sender=sender,
            deliveries=[NewDelivery(str(uuid.uuid4()), "dest", "filedrop")],
        )
        await store.accept(new, WorkState.READY)
        if n % 3 == 0:
            job = await store.job(new.deliveries[0].id)
            assert job is not None
            await store.record_dead(job, "broken", Attempt(1, "v1"))
        made.append((new.id, municipality, sender))
    return made


async def walk(browser: Browser, f: SubmissionFilter, limit: int = 4) -> list[str]:
    seen: list[tuple[float, str]] = []
    after: Cursor | None = None
    while True:
        page = await browser.submissions(f, after, limit)
        seen += [(r.received_at, r.id) for r in page.rows]
        assert len(page.rows) <= limit
        if page.next is None:
            assert seen == sorted(seen, reverse=True)  # newest first, ties by id
            return [id_ for _, id_ in seen]
        after = Cursor.decode(page.next.encode())


@pytest.mark.parametrize("few", [True, False], ids=["few-in-state", "many-in-state"])
async def test_keyset_pages_cover_every_match_once_newest_first(
    store: Store, few: bool, monkeypatch: pytest.MonkeyPatch
):
    # Both ways of filtering by state give the same rows (browse.FEW picks one by count).
    monkeypatch.setattr(browse, "FEW", 1000 if few else 0)
    made = await fill(store)
    browser = Browser(store.db)
    newest_first = [m[0] for m in reversed(made)]  # accepted one after another
    everything = await walk(browser, SubmissionFilter())
    assert sorted(everything) == sorted(newest_first)
    assert len(everything) == len(set(everything)) == 21
    dead = set(newest_first[::-1][::3])
    assert set(await walk(browser, SubmissionFilter(state=DeliveryState.DEAD))) == dead
    pending = await walk(browser, SubmissionFilter(state=DeliveryState.PENDING))
    assert set(pending) == set(newest_first) - dead
    munich = await walk(browser, SubmissionFilter(municipality="09162000", sender="portal-0"))
    assert set(munich) == {i for i, m, s in made if m == "09162000" and s == "portal-0"}
    both = await walk(
        browser, SubmissionFilter(municipality="08111000", state=DeliveryState.DEAD), limit=1
    )
    assert set(both) == {i for i, m, _ in made if m == "08111000"} & dead
    page = await browser.submissions(SubmissionFilter(received_until=0.0), None, 10)
    assert page.rows == [] and page.next is None


async def test_dead_context_raw_xml_and_queue_depths(store: Store):
    made = await fill(store)
    browser = Browser(store.db)
    view = await store.submission(made[0][0])
    (delivery,) = view.deliveries
    context = await browser.dead_context([delivery.id, "unknown"])
    assert list(context) == [delivery.id]
    assert context[delivery.id].submission_id == made[0][0]
    assert context[delivery.id].problem == "broken"
    assert await browser.raw_xml(made[0][0]) == b"<a/>"
    with pytest.raises(NotFound):
        await browser.raw_xml("no-such-id")
    depths = await browser.queue_depths()
    assert sum(d.count for d in depths if d.destination == "dest") == 21


def test_cursor_round_trip_and_garbage():
    cursor = Cursor(1764633600.123456, "abc-def")
    assert Cursor.decode(cursor.encode()) == cursor
    assert Cursor.decode("") is None
    assert Cursor.decode("not-a-number~x") is None
    assert Cursor.decode("1.5~") is None
