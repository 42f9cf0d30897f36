"""One sender's bad input never fails another's: on SQLite and PostgreSQL, values the store
cannot hold are refused at intake with a 4xx naming the field, and a row the database
itself refuses fails only its own submission, not the group-commit batch it rode in."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx

from tests.faults.conftest import SENDER, attachment, multipart
from tests.support.gateway_process import GatewayProcess
from tests.support.messages import fresh

XML = {**SENDER, "Content-Type": "application/xml"}
SAMPLE = "hundesteuer/valid/anmeldung-nuertingen.xml"
AUTHOR = b"<xgb:kennung>efa:hundesteuer-online</xgb:kennung>"

Request = tuple[str, bytes, dict[str, str]]


def with_author(author: str) -> bytes:
    body = fresh(SAMPLE)
    assert AUTHOR in body
    return body.replace(AUTHOR, f"<xgb:kennung>{author}</xgb:kennung>".encode())


def honest(i: int) -> Request:
    """Valid submissions, among them what the narrow columns used to fail on PostgreSQL."""
    kind = i % 4
    if kind == 0:
        return "plain", fresh(SAMPLE), XML
    if kind == 1:  # xgb:Text allows 255 characters; the column held 200
        return "author-255", with_author("efa:" + "a" * 251), XML
    if kind == 2:  # a long name is delivered under a shortened one
        body, headers = multipart(fresh(SAMPLE), [attachment(b"s" * 300 + b".pdf", b"%PDF")])
        return "name-300", body, headers
    body, headers = multipart(
        fresh(SAMPLE),
        [attachment(b"scan.pdf", b"one"), attachment(b"scan.pdf", b"two")],
    )
    return "same-names", body, headers


# name → (request builder, status, problem type, field)
BAD: dict[str, tuple[Callable[[], Request], int, str, str]] = {
    "nul-in-name": (
        lambda: ("nul-in-name", *multipart(fresh(SAMPLE), [attachment(b"a\0b.pdf", b"x")])),
        422,
        "invalid-attachment",
        "attachments[1].filename",
    ),
    "name-1001": (
        lambda: ("name-1001", *multipart(fresh(SAMPLE), [attachment(b"n" * 1001, b"x")])),
        422,
        "invalid-attachment",
        "attachments[1].filename",
    ),
    "content-type-1001": (
        lambda: (
            "content-type-1001",
            *multipart(fresh(SAMPLE), [attachment(b"a.pdf", b"x", b"application/" + b"x" * 990)]),
        ),
        422,
        "invalid-attachment",
        "attachments[1].content_type",
    ),
    "no-filename": (
        lambda: (
            "no-filename",
            *multipart(fresh(SAMPLE), [(b'form-data; name="attachment"', None, b"x")]),
        ),
        422,
        "invalid-attachment",
        "attachments[1].filename",
    ),
    # Passes every intake check; a trigger installed below makes the database refuse it
    # (SQLite: a constraint error, PostgreSQL: a data exception, as for a NUL or a long value).
    "refused-by-database": (
        lambda: ("refused-by-database", with_author("efa:poison"), XML),
        422,
        "unacceptable-field",
        "submission",
    ),
}

ROUNDS = 3
HONEST_PER_ROUND = 40


async def install_poison_trigger(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        db = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        db.execute(
            "CREATE TRIGGER poison BEFORE INSERT ON submissions "
            "WHEN NEW.author = 'efa:poison' BEGIN SELECT RAISE(ABORT, 'poison'); END"
        )
        db.close()
        return
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.author = 'efa:poison' THEN RAISE EXCEPTION 'poison' USING ERRCODE = '22023';"
            " END IF; RETURN NEW; END $$"
        )
        await conn.execute(
            "CREATE TRIGGER poison BEFORE INSERT ON submissions "
            "FOR EACH ROW EXECUTE FUNCTION poison()"
        )
    finally:
        await conn.close()


async def test_bad_messages_among_honest_ones_fail_only_themselves(
    serve: GatewayProcess, database_url: str, config_dir: Path
) -> None:
    await install_poison_trigger(database_url)
    rng = random.Random(12)
    answers: list[tuple[str, bool, httpx.Response]] = []
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=serve.url, timeout=60, limits=limits) as client:
        for _ in range(ROUNDS):
            requests = [(honest(i), True) for i in range(HONEST_PER_ROUND)]
            requests += [(build(), False) for build, *_ in BAD.values()]
            rng.shuffle(requests)

            async def send(request: Request, good: bool) -> tuple[str, bool, httpx.Response]:
                name, body, headers = request
                response = await client.post("/v1/submissions", content=body, headers=headers)
                return name, good, response

            answers += await asyncio.gather(*(send(r, good) for r, good in requests))

        statuses = Counter((name, r.status_code) for name, _, r in answers)
        print(f"\n{database_url.partition(':')[0]}: {sorted(statuses.items())}")  # the counts
        honest_answers = [r for _, good, r in answers if good]
        assert len(honest_answers) == ROUNDS * HONEST_PER_ROUND
        assert all(r.status_code == 202 for r in honest_answers), statuses
        for name, good, response in answers:
            if good:
                continue
            _, status, problem, field = BAD[name]
            assert response.status_code == status, (name, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"].endswith(f"/{problem}"), (name, response.text)
            assert response.json()["field"] == field, (name, response.text)
        assert not [r for _, _, r in answers if r.status_code >= 500], statuses

        # Every honest one is delivered, each attachment as its own file.
        locations = [r.headers["location"] for r in honest_answers]
        deadline = time.monotonic() + 120
        pending = set(locations)
        while pending and time.monotonic() < deadline:
            views = await asyncio.gather(*(client.get(url, headers=SENDER) for url in pending))
            pending = {
                url
                for url, v in zip(pending, views, strict=True)
                if v.json()["status"] != "delivered"
            }
            await asyncio.sleep(0.3)
        assert not pending, f"{len(pending)} honest submissions not delivered"
    folder = config_dir.parent / "out" / "bw-hundesteuer"
    delivered = sorted(p.name for p in folder.glob("*.attachments/*"))
    per_round = HONEST_PER_ROUND // 4
    assert delivered.count("1-scan.pdf") == delivered.count("2-scan.pdf") == ROUNDS * per_round
    assert len([n for n in delivered if n.startswith("1-sss")]) == ROUNDS * per_round
    log = serve.log.read_text()
    assert log.count("store refused submission") == ROUNDS, log[-3000:]
