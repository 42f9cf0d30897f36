"""Group commit: concurrent callers share one transaction, so one fsync serves many.

A caller's item goes into the next batch, which is everything that queued up while the
previous batch was committing (at most ``max_batch``). There is no timer: a lone caller
goes straight through, and under load batches grow by themselves, which is what lets a
store with ``synchronous=FULL`` (one fsync per commit) keep up with the API.

Each caller gets its own outcome, and only after the batch's commit returned: nothing is
answered before it is durable. ``commit`` settles every item of a batch on its own (a
conflict on one item must not fail the others); if it raises, every item of that batch
gets the exception, and later batches are unaffected.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        commit: Callable[[Sequence[T]], Awaitable[Sequence[R | Exception]]],
        max_batch: int = 128,
    ) -> None:
        self._commit = commit
        self.max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Commit ``item`` with whatever else is waiting; return its outcome or raise it."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await future

    async def aclose(self) -> None:
        """Wait until everything submitted so far is settled."""
        if self._task is not None:
            await self._task

    async def _drain(self) -> None:
        while self._queue:
            taken = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            # A caller that gave up (cancelled) before its batch started is not stored.
            batch = [(item, future) for item, future in taken if not future.done()]
            if not batch:
                continue
            outcomes: Sequence[R | Exception]
            try:
                outcomes = await self._commit([item for item, _ in batch])
                if len(outcomes) != len(batch):
                    raise RuntimeError(f"{len(outcomes)} outcomes for {len(batch)} items")
            except Exception as exc:
                outcomes = [exc] * len(batch)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
