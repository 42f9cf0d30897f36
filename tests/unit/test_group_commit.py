"""The group-commit batcher on its own: batching, per-item outcomes, failures, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from gateway.store.group_commit import GroupCommit


class Recorder:
    """A commit function that records its batches and can be held open."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def commit(self, items: Sequence[int]) -> list[int | Exception]:
        self.batches.append(list(items))
        await self.gate.wait()
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]


async def test_a_lone_caller_goes_straight_through() -> None:
    rec = Recorder()
    group: GroupCommit[int, int] = GroupCommit(rec.commit)
    assert await group.submit(2) == 20
    assert rec.batches == [[2]]


async def test_callers_waiting_during_a_commit_share_the_next_one() -> None:
    rec = Recorder()
    rec.gate.clear()
    group: GroupCommit[int, int] = GroupCommit(rec.commit)
    first = asyncio.create_task(group.submit(0))
    await asyncio.sleep(0)
    others = [asyncio.create_task(group.submit(i)) for i in (2, 4, 6)]
    await asyncio.sleep(0)
    rec.gate.set()
    assert await first == 0
    assert await asyncio.gather(*others) == [20, 40, 60]
    assert rec.batches == [[0], [2, 4, 6]]


async def test_each_caller_gets_its_own_outcome_and_a_failure_does_not_spread() -> None:
    rec = Recorder()
    rec.gate.clear()
    group: GroupCommit[int, int] = GroupCommit(rec.commit)
    tasks = [asyncio.create_task(group.submit(i)) for i in range(6)]
    await asyncio.sleep(0)
    rec.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0::2] == [0, 20, 40]
    assert [str(r) for r in results[1::2]] == ["odd 1", "odd 3", "odd 5"]


async def test_a_failing_commit_fails_its_batch_only() -> None:
    calls = 0

    async def commit(items: Sequence[int]) -> list[int | Exception]:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0.01)
            raise OSError("disk full")
        return list(items)

    group: GroupCommit[int, int] = GroupCommit(commit)
    first = asyncio.create_task(group.submit(1))
    await asyncio.sleep(0)
    second = asyncio.create_task(group.submit(2))
    with pytest.raises(OSError, match="disk full"):
        await first
    assert await second == 2


async def test_batches_are_capped() -> None:
    rec = Recorder()
    rec.gate.clear()
    group: GroupCommit[int, int] = GroupCommit(rec.commit, max_batch=2)
    tasks = [asyncio.create_task(group.submit(i * 2)) for i in range(5)]
    await asyncio.sleep(0)
    rec.gate.set()
    await asyncio.gather(*tasks)
    assert [len(b) for b in rec.batches] == [2, 2, 1]


async def test_a_caller_cancelled_before_its_batch_is_not_committed() -> None:
    rec = Recorder()
    rec.gate.clear()
    group: GroupCommit[int, int] = GroupCommit(rec.commit)
    first = asyncio.create_task(group.submit(0))
    await asyncio.sleep(0)
    gone = asyncio.create_task(group.submit(2))
    kept = asyncio.create_task(group.submit(4))
    await asyncio.sleep(0)
    gone.cancel()
    rec.gate.set()
    assert await first == 0
    assert await kept == 40
    assert rec.batches == [[0], [4]]
    await group.aclose()
