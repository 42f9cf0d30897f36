"""Intake in child processes: same answers as in process, and a dead or hung child costs
only the calls it held (503), then is replaced."""

from __future__ import annotations

import asyncio
import inspect
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway import errors
from gateway.errors import (
    ErrorDetail,
    GatewayError,
    InvalidAttachment,
    InvalidMessage,
    NotPermitted,
    RateLimited,
    UnacceptableField,
    Unavailable,
)
from gateway.intake.pipeline import examine
from gateway.intake.processes import IntakeProcesses
from gateway.intake.registry import SchemaRegistry
from gateway.settings import SHIPPED_SCHEMAS
from tests.support.gateway_process import REPO
from tests.support.hanging_intake_child import HANG

SAMPLES = SHIPPED_SCHEMAS / "samples"


def _sample(name: str) -> Path:
    found = sorted(SAMPLES.rglob(name))
    assert found, f"no sample {name}"
    return found[0]


@pytest.fixture
async def pool() -> AsyncIterator[IntakeProcesses]:
    processes = await IntakeProcesses.start([SHIPPED_SCHEMAS], 1, call_timeout=5.0)
    try:
        yield processes
    finally:
        await processes.close()


async def _replaced(pool: IntakeProcesses, old_pid: int, timeout: float = 20.0) -> int:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if pool.pids and pool.pids[0] != old_pid:
            return pool.pids[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"intake process {old_pid} was not replaced within {timeout} s")


def test_every_gateway_error_survives_pickling() -> None:
    classes = [
        cls
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, GatewayError)
    ]
    assert len(classes) > 10
    for cls in classes:
        if cls is InvalidMessage:
            error: GatewayError = InvalidMessage("2 violations", [ErrorDetail("/a", 3, "bad")])
        elif cls is NotPermitted:
            error = NotPermitted("why", rule="regions")
        elif cls in (InvalidAttachment, UnacceptableField):
            error = cls("why", field="name")
        elif cls is RateLimited:
            error = RateLimited("why", retry_after=3)
        else:
            # the extra constructor arguments some errors take (field, retry_after, …)
            extra = {"field": "attachments[1].filename", "retry_after": 2.0}
            names = list(inspect.signature(cls).parameters)[1:]
            error = cls("why", *(extra[name] for name in names))
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is cls
        assert copy.detail == error.detail
        assert str(copy) == str(error)
        assert copy.__dict__ == error.__dict__


async def test_answers_match_in_process_intake(pool: IntakeProcesses) -> None:
    registry = SchemaRegistry.load([SHIPPED_SCHEMAS])
    for path in sorted(SAMPLES.rglob("*.xml")):
        body = path.read_bytes()
        try:
            expected: object = examine(body, registry)
        except GatewayError as exc:
            expected = (type(exc), exc.detail, getattr(exc, "errors", None))
        try:
            got: object = await pool.examine(body)
        except GatewayError as exc:
            got = (type(exc), exc.detail, getattr(exc, "errors", None))
        assert got == expected, path.name


async def test_business_rule_errors_come_back_with_their_locations(
    pool: IntakeProcesses,
) -> None:
    with pytest.raises(InvalidMessage) as caught:
        await pool.examine(_sample("rule-violation.xml").read_bytes())
    (error,) = caught.value.errors
    assert error.message.startswith("[sch-hs-001]")
    assert error.line is not None and error.path.startswith("/hs:")


async def _hanging_pool(call_timeout: float) -> IntakeProcesses:
    return await IntakeProcesses.start(
        [SHIPPED_SCHEMAS],
        1,
        call_timeout=call_timeout,
        module="tests.support.hanging_intake_child",
    )


async def test_a_killed_child_fails_only_its_calls_and_is_replaced() -> None:
    pool = await _hanging_pool(call_timeout=30.0)
    try:
        (pid,) = pool.pids
        in_flight = asyncio.create_task(pool.examine(HANG))
        await asyncio.sleep(0.3)
        assert not in_flight.done()
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(Unavailable, match="exited"):
            await in_flight
        assert await _replaced(pool, pid) != pid
        examined = await pool.examine(_sample("anmeldung-koeln.xml").read_bytes())
        assert examined.header.recipient == "ags:05315000"
    finally:
        await pool.close()


async def test_a_hung_child_answers_503_after_the_timeout_and_is_replaced() -> None:
    pool = await _hanging_pool(call_timeout=0.5)
    try:
        (pid,) = pool.pids
        started = asyncio.get_running_loop().time()
        with pytest.raises(Unavailable, match="longer than 0.5 s"):
            await pool.examine(HANG)
        assert asyncio.get_running_loop().time() - started < 3
        await _replaced(pool, pid)
        body = _sample("anmeldung-koeln.xml").read_bytes()
        assert (await pool.examine(body)).schema_set == "hundesteuer-1.0"
    finally:
        await pool.close()


async def test_close_stops_the_children(pool: IntakeProcesses) -> None:
    pids = pool.pids
    await pool.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_children_exit_when_the_api_process_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "holder.py"
    script.write_text(
        "import asyncio, sys\n"
        "from gateway.intake.processes import IntakeProcesses\n"
        "from gateway.settings import SHIPPED_SCHEMAS\n"
        "async def main():\n"
        "    pool = await IntakeProcesses.start([SHIPPED_SCHEMAS], 2)\n"
        "    print(*pool.pids, flush=True)\n"
        "    await asyncio.sleep(600)\n"
        "asyncio.run(main())\n"
    )
    holder = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, cwd=REPO, text=True
    )
    try:
        assert holder.stdout is not None
        pids = [int(pid) for pid in holder.stdout.readline().split()]
        assert len(pids) == 2
    finally:
        holder.kill()  # SIGKILL: no chance to close anything
        holder.wait(timeout=10)
    deadline = time.monotonic() + 10
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in pids if _running(pid)]
        time.sleep(0.05)
    assert not alive, f"intake processes {alive} outlived the killed API process"


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; only its parent (gone) would reap it
