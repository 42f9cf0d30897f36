"""The admin console's submission list at 1,000,000 rows on SQLite: one page per filter.

    .venv/bin/python bench/console_paging.py [--rows 1000000] [--db PATH] [--repeat 20]

Builds the schema with the shipped migrations, fills it with generated submissions (one
delivery each: 97.9 % delivered, 2 % pending, 0.1 % dead; 400 municipalities, 3 services,
5 senders, over 365 days), then times ``gateway.store.browse.list_submissions`` for the
first page and a deep page (keyset from the middle of the table) of every filter, and shows
SQLite's plan for each. A page must cost the rows it shows, not the table: the target is
under 50 ms per page on the development machine. ``--db`` keeps the file for a rerun
(generation takes a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import Connection, create_engine, text  # noqa: E402
from sqlalchemy.dialects import sqlite  # noqa: E402

from gateway.store.browse import Cursor, SubmissionFilter, list_submissions  # noqa: E402
from gateway.store.database import Database  # noqa: E402
from gateway.store.migrate import migrate  # noqa: E402
from gateway.store.states import DeliveryState  # noqa: E402

PAGE = 50
SERVICES = [
    "hundesteuer.anmeldung.0101",
    "hundesteuer.abmeldung.0102",
    "bewohnerparken.antrag.0201",
]
SENDERS = [f"portal-{n}" for n in range(5)]
START = 1_767_225_600.0  # 2026-01-01


def municipalities(count: int) -> list[str]:
    return [f"08{n:06d}" for n in range(count)]


async def create_schema(path: Path) -> None:
    db = Database.open(f"sqlite:///{path}")
    try:
        await migrate(db)
    finally:
        await db.close()


def generate(conn: Connection, rows: int) -> None:
    rng = random.Random(13)
    keys = municipalities(400)
    raw = conn.connection.driver_connection
    assert raw is not None
    batch = 50_000
    for start in range(0, rows, batch):
        subs, dels = [], []
        for n in range(start, min(rows, start + batch)):
            sid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            at = START + n * (365 * 86400 / rows) + rng.random()
            subs.append(
                (
                    sid,
                    f"msg-{n}",
                    rng.choice(SENDERS),
                    "0" * 64,
                    rng.choice(SERVICES),
                    "hundesteuer",
                    rng.choice(keys),
                    "ags:x",
                    "cfg",
                    at,
                )
            )
            roll = rng.random()
            state = "dead" if roll < 0.001 else "pending" if roll < 0.021 else "delivered"
            dels.append((str(uuid.uuid4()), sid, "dest", "filedrop", state, 1, at))
        raw.executemany(
            "INSERT INTO submissions (id, message_uuid, sender, content_sha256, message_type,"
            " schema_set, municipality, recipient, config_version, received_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?)",
            subs,
        )
        raw.executemany(
            "INSERT INTO deliveries (id, submission_id, destination, adapter, state, attempts,"
            " updated_at) VALUES (?,?,?,?,?,?,?)",
            dels,
        )
        raw.commit()
        print(f"  {min(rows, start + batch):>9} rows", end="\r", flush=True)
    print()


def plan(conn: Connection, f: SubmissionFilter, after: Cursor | None) -> str:
    from sqlalchemy import select, tuple_

    from gateway.store.browse import _conditions, few_in_state
    from gateway.store.tables import submissions

    s = submissions.c
    where = _conditions(f, f.state is not None and few_in_state(conn, f.state))
    if after is not None:
        where.append(tuple_(s.received_at, s.id) < tuple_(after.received_at, after.id))
    query = select(s.id).where(*where).order_by(s.received_at.desc(), s.id.desc()).limit(PAGE + 1)
    compiled = query.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
    rows = conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")).all()
    return "; ".join(r[-1] for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "console.db"
        fresh = not path.exists()
        if fresh:
            asyncio.run(create_schema(path))
        engine = create_engine(f"sqlite:///{path}")
        with engine.connect() as conn:
            if fresh:
                began = time.perf_counter()
                generate(conn, args.rows)
                print(f"generated {args.rows} rows in {time.perf_counter() - began:.1f} s")
            total = conn.execute(text("SELECT count(*) FROM submissions")).scalar_one()
            middle = conn.execute(
                text(
                    "SELECT received_at, id FROM submissions ORDER BY received_at LIMIT 1 OFFSET :n"
                ),
                {"n": total // 2},
            ).one()
            deep = Cursor(middle[0], middle[1])
            one_place = municipalities(400)[7]
            day = START + 200 * 86400
            cases = {
                "no filter": SubmissionFilter(),
                "municipality": SubmissionFilter(municipality=one_place),
                "sender": SubmissionFilter(sender=SENDERS[2]),
                "service": SubmissionFilter(message_type=SERVICES[1]),
                "state dead (0.1 %)": SubmissionFilter(state=DeliveryState.DEAD),
                "state pending (2 %)": SubmissionFilter(state=DeliveryState.PENDING),
                "state delivered (98 %)": SubmissionFilter(state=DeliveryState.DELIVERED),
                "one day": SubmissionFilter(received_from=day, received_until=day + 86400),
                "municipality + dead": SubmissionFilter(
                    municipality=one_place, state=DeliveryState.DEAD
                ),
            }
            print(f"{total} submissions; page of {PAGE}; median of {args.repeat} runs")
            print(f"{'filter':<24} {'first page':>11} {'deep page':>11}  rows  plan (first page)")
            for name, f in cases.items():
                times = {}
                shown = 0
                for label, after in (("first", None), ("deep", deep)):
                    runs = []
                    for _ in range(args.repeat):
                        began = time.perf_counter()
                        page = list_submissions(conn, f, after, PAGE)
                        runs.append(time.perf_counter() - began)
                    times[label] = statistics.median(runs) * 1000
                    shown = shown if label == "deep" else len(page.rows)
                print(
                    f"{name:<24} {times['first']:>8.2f} ms {times['deep']:>8.2f} ms  {shown:>4}"
                    f"  {plan(conn, f, None)}"
                )


if __name__ == "__main__":
    main()
