"""The contract kit catches every mutant of the example adapter and passes the adapter itself.

Each run is the example package's own contract test (its ``tests/conftest.py`` and
``tests/test_contract.py``, unchanged) with ``adapter`` pointed at one class, in its own
pytest process; the runs go in parallel. A mutant counts as caught only if the kit test
named by its ``CAUGHT_BY`` fails (or errors), so it is caught for the reason it exists.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

import tests.kit_mutants
from gateway.testing.adapter_contract import AdapterContract
from tests.support.gateway_process import REPO

pytestmark = pytest.mark.slow

EXAMPLE = REPO / "examples" / "xoev-gateway-adapter-example"
ORIGINAL = "xoev_gateway_adapter_example.adapter:AktenablageAdapter"
MUTANTS = sorted(
    m.name for m in pkgutil.iter_modules(tests.kit_mutants.__path__) if not m.name.startswith("test_")
)
PARALLEL = 6

RUN_FILE = '''from test_contract import TestAktenablageContract as _Contract


class TestRun(_Contract):
    adapter = {adapter!r}
'''

PYTEST_INI = """[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
addopts = --strict-markers -p no:cacheprovider
filterwarnings = error
"""


@dataclass(frozen=True)
class KitRun:
    returncode: int
    failed: frozenset[str]
    passed: frozenset[str]
    output: str


def run_kit(adapter: str, directory: Path) -> KitRun:
    directory.mkdir(parents=True)
    for name in ("conftest.py", "test_contract.py"):
        shutil.copy(EXAMPLE / "tests" / name, directory / name)
    (directory / "test_run.py").write_text(RUN_FILE.format(adapter=adapter))
    (directory / "pytest.ini").write_text(PYTEST_INI)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(EXAMPLE / "src"), str(REPO)]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "test_run.py", "--junitxml=report.xml"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    failed, passed = set(), set()
    for case in ET.parse(directory / "report.xml").iter("testcase"):
        name = case.get("name", "")
        if case.find("failure") is not None or case.find("error") is not None:
            failed.add(name)
        elif case.find("skipped") is None:
            passed.add(name)
    return KitRun(result.returncode, frozenset(failed), frozenset(passed), result.stdout[-4000:])


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KitRun]:
    base = tmp_path_factory.mktemp("kit")
    targets = {"original": ORIGINAL} | {m: f"tests.kit_mutants.{m}:Mutant" for m in MUTANTS}
    with ThreadPoolExecutor(PARALLEL) as pool:
        futures = {name: pool.submit(run_kit, path, base / name) for name, path in targets.items()}
        return {name: future.result() for name, future in futures.items()}


def test_there_is_a_mutant_for_each_kind_of_breakage() -> None:
    assert len(MUTANTS) >= 16
    caught_by = {importlib.import_module(f"tests.kit_mutants.{m}").CAUGHT_BY for m in MUTANTS}
    kit_tests = {name for name in dir(AdapterContract) if name.startswith("test_")}
    # Every test of the kit has a mutant that it catches, and every mutant names one.
    assert caught_by == kit_tests


def test_the_example_adapter_passes_the_kit(runs: dict[str, KitRun]) -> None:
    run = runs["original"]
    assert run.returncode == 0 and not run.failed, run.output
    assert len(run.passed) >= 10, run.output


@pytest.mark.parametrize("mutant", MUTANTS)
def test_the_kit_catches_the_mutant(runs: dict[str, KitRun], mutant: str) -> None:
    run = runs[mutant]
    expected = importlib.import_module(f"tests.kit_mutants.{mutant}").CAUGHT_BY
    assert run.returncode != 0, f"the kit let {mutant} pass:\n{run.output}"
    assert expected in run.failed, (
        f"{mutant} was caught by {sorted(run.failed)}, not by {expected}:\n{run.output}"
    )
