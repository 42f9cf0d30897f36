"""Intake in separate processes, so that XML work does not hold the event loop.

Parsing, XSD validation and the Schematron rules take about 0.65 ms of a ~3 KB message,
all of it holding the GIL: in one process they stall every other request, and no thread
can help. ``IntakeProcesses`` runs :func:`gateway.intake.pipeline.examine` in child
processes (``python -m gateway.intake.child``) and gets back the small, config-independent
:class:`Examined`; routing against the live config stays in the API process.

Why not ``concurrent.futures.ProcessPoolExecutor``: measured on this path it costs the
API process ~200 µs of CPU per call (a feeder thread pickling into a
``multiprocessing.Queue``, a management thread reading results, both taking the GIL),
a third of what it moves away. Here each child has one socket; frames are
length-prefixed pickles written and read by the event loop itself, ~20 µs per call.

Failure handling: a child that dies (crash, OOM kill) fails only the calls it held, with
503, and is started again; a call that takes longer than ``call_timeout`` kills its child
(503 as well). Nothing is accepted before intake answers, so nothing accepted is lost.
A child whose parent dies reads end-of-file and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import socket
import struct
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

from gateway.errors import GatewayError, SchemaRegistryError, Unavailable
from gateway.intake.pipeline import Examined, examine
from gateway.intake.registry import SchemaRegistry

log = logging.getLogger("xoev_gateway.intake")

FRAME = struct.Struct("!I")
READY = 0  # request id of the child's first frame: registry loaded, or why not


class Examiner(Protocol):
    async def examine(self, body: bytes) -> Examined: ...

    async def reload(self, registry: SchemaRegistry) -> None:
        """Examine with ``registry`` (already loaded and checked) from now on."""

    async def close(self) -> None: ...


class InProcess:
    """Intake on the event loop: for one-core machines, tests and the CLI."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self.registry = registry

    async def examine(self, body: bytes) -> Examined:
        return examine(body, self.registry)

    async def reload(self, registry: SchemaRegistry) -> None:
        self.registry = registry

    async def close(self) -> None:
        return None


def auto_process_count() -> int:
    """One core stays for the event loop; the others validate (none on a single core)."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


class _Child(asyncio.Protocol):
    def __init__(self, number: int, on_lost: Callable[[_Child], None]) -> None:
        self.number = number
        self.on_lost = on_lost
        self.pending: dict[int, asyncio.Future[Examined]] = {}
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.alive = False
        self.retired = False
        """Replaced by a reload: finishes its calls, then exits; never restarted."""
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def send(self, request_id: int, body: bytes) -> asyncio.Future[Examined]:
        assert self.transport is not None
        future: asyncio.Future[Examined] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        frame = pickle.dumps((request_id, body), protocol=pickle.HIGHEST_PROTOCOL)
        self.transport.write(FRAME.pack(len(frame)) + frame)
        return future

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= FRAME.size:
            (size,) = FRAME.unpack_from(buffer)
            if len(buffer) < FRAME.size + size:
                return
            frame = buffer[FRAME.size : FRAME.size + size]
            request_id, ok, value = pickle.loads(frame)  # noqa: S301 (our own child)
            del buffer[: FRAME.size + size]
            if request_id == READY:
                if ok:
                    self.alive = True
                    self.ready.set_result(None)
                else:
                    self.ready.set_exception(value)
                continue
            future = self.pending.pop(request_id, None)
            if future is None or future.done():
                continue  # its caller timed out
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        if not self.ready.done():
            self.ready.set_exception(SchemaRegistryError("the intake process exited at start"))
        for future in self.pending.values():
            if not future.done():
                future.set_exception(
                    Unavailable(f"intake process {self.number} exited; retry the submission")
                )
        self.pending.clear()
        self.on_lost(self)

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        if self.transport is not None:
            self.transport.close()


class IntakeProcesses:
    """``count`` child processes, each examining one message at a time from its socket."""

    def __init__(
        self,
        schema_dirs: Sequence[Path],
        count: int,
        *,
        call_timeout: float = 30.0,
        start_timeout: float = 60.0,
        restart_delay: float = 0.5,
        module: str = "gateway.intake.child",
    ) -> None:
        if count < 1:
            raise ValueError("IntakeProcesses needs at least one process; use InProcess")
        self.schema_dirs = [str(path) for path in schema_dirs]
        self.count = count
        self.call_timeout = call_timeout
        self.start_timeout = start_timeout
        self.restart_delay = restart_delay
        self.module = module  # what runs as ``python -m``; tests swap in a child that hangs
        self._children: list[_Child] = []
        self._next_id = READY
        self._closing = False
        self._restarts: set[asyncio.Task[None]] = set()

    @classmethod
    async def start(
        cls, schema_dirs: Sequence[Path], count: int, **options: Any
    ) -> IntakeProcesses:
        pool = cls(schema_dirs, count, **options)
        try:
            pool._children = list(
                await asyncio.gather(*(pool._spawn(number) for number in range(count)))
            )
        except BaseException:
            await pool.close()
            raise
        return pool

    @property
    def pids(self) -> list[int]:
        return [c.process.pid for c in self._children if c.process is not None and c.alive]

    async def examine(self, body: bytes) -> Examined:
        live = [child for child in self._children if child.alive]
        if not live:
            raise Unavailable("the intake processes are restarting; retry the submission")
        child = min(live, key=lambda c: len(c.pending))
        self._next_id += 1
        future = child.send(self._next_id, body)
        timeout = self.call_timeout
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            log.error("intake process %s took over %s s; restarting it", child.number, timeout)
            child.kill()
            raise Unavailable(
                f"validating the message took longer than {self.call_timeout:g} s"
            ) from None

    async def reload(self, registry: SchemaRegistry) -> None:
        """New children load the schema directories again (the parent checked them with
        ``registry``); they take over, and the old ones finish their calls and exit."""
        fresh = list(await asyncio.gather(*(self._spawn(number) for number in range(self.count))))
        old, self._children = self._children, fresh
        for child in old:
            child.retired = True
        calls = [future for child in old for future in child.pending.values()]
        if calls:
            await asyncio.wait(calls, timeout=self.call_timeout)
        for child in old:
            if child.transport is not None:
                child.transport.close()
        for child in old:
            if child.process is not None:
                await _reap(child.process)

    async def close(self) -> None:
        self._closing = True
        for task in self._restarts:
            task.cancel()
        for child in self._children:
            if child.transport is not None:
                child.transport.close()  # the child reads end-of-file and exits
        for child in self._children:
            if child.process is not None:
                await _reap(child.process)

    async def _spawn(self, number: int) -> _Child:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        with ours, theirs:
            child_fd = theirs.fileno()
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self.module,
                str(child_fd),
                *self.schema_dirs,
                pass_fds=(child_fd,),
            )
            _transport, child = await loop.create_connection(
                lambda: _Child(number, self._lost), sock=ours.dup()
            )
        child.process = process
        try:
            async with asyncio.timeout(self.start_timeout):
                await child.ready
        except BaseException:
            child.kill()
            await _reap(process)
            raise
        return child

    def _lost(self, child: _Child) -> None:
        """A child's socket closed: it exited (or was killed); start a replacement."""
        if child.retired or self._closing:
            return  # replaced by a reload, or shutting down
        if not child.ready.done() or child.ready.exception() is not None:
            return  # still starting (``_spawn`` reports that)
        task = asyncio.get_running_loop().create_task(self._replace(child))
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)

    async def _replace(self, child: _Child) -> None:
        assert child.process is not None
        child.kill()
        await _reap(child.process)
        log.error(
            "intake process %s (pid %s) exited with %s; starting a new one",
            child.number,
            child.process.pid,
            child.process.returncode,
        )
        while not self._closing:
            await asyncio.sleep(self.restart_delay)
            try:
                replacement = await self._spawn(child.number)
            except (OSError, GatewayError) as exc:
                log.error("intake process %s did not start again: %s", child.number, exc)
                continue
            if self._closing:
                replacement.kill()
                if replacement.process is not None:
                    await _reap(replacement.process)
                return
            if child in self._children:  # a reload may have replaced it meanwhile
                self._children[self._children.index(child)] = replacement
            else:
                replacement.retired = True
                if replacement.transport is not None:
                    replacement.transport.close()
            return


async def _reap(process: asyncio.subprocess.Process) -> None:
    try:
        await asyncio.wait_for(process.wait(), timeout=10)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
