"""The contract kit catches every mutant of the example adapter and passes the adapter itself.

Each run is the example package's own contract test (its ``tests/conftest.py`` and
``tests/test_contract.py``, unchanged) with ``adapter`` pointed at a class: the example in
a pytest process of its own, the mutants in a few groups (one process, one target each,
a test class per mutant), all in parallel. A mutant's tests stop at its first failure,
which must be the kit test its ``CAUGHT_BY`` names: it is caught for the reason it exists,
and the kit's tests before that one pass it.
"""

from __future__ import annotations

import ast
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
GROUPS = 4


def caught_by(mutant: str) -> str:
    """The mutant's ``CAUGHT_BY``, read without importing it (that needs the example
    package, which only the kit's runs have on their path)."""
    tree = ast.parse((Path(tests.kit_mutants.__file__).parent / f"{mutant}.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "CAUGHT_BY":
            return str(ast.literal_eval(node.value))
    raise AssertionError(f"{mutant} names no CAUGHT_BY")

RUN_HEADER = "from test_contract import TestAktenablageContract as _Contract\n"
RUN_CLASS = "\n\nclass Test_{name}(_Contract):\n    adapter = {adapter!r}\n"

# Loaded with -p: once a class (one adapter) failed, its further tests are skipped.
STOP_PLUGIN = '''import pytest

_failed = set()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if item.cls is not None and item.cls.__name__ in _failed:
        pytest.skip("this adapter has failed the kit already")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and item.cls is not None:
        _failed.add(item.cls.__name__)
    return report
'''

PYTEST_INI = """[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
addopts = --strict-markers -p no:cacheprovider
filterwarnings = error
"""


@dataclass(frozen=True)
class KitRun:
    """One adapter's results: the kit tests it failed (or errored in) and passed."""

    returncode: int
    failed: frozenset[str]
    passed: frozenset[str]
    output: str


def run_kit(adapters: dict[str, str], directory: Path) -> dict[str, KitRun]:
    """Run the kit against each adapter (name → import path) in one pytest process."""
    directory.mkdir(parents=True)
    for name in ("conftest.py", "test_contract.py"):
        shutil.copy(EXAMPLE / "tests" / name, directory / name)
    classes = "".join(RUN_CLASS.format(name=n, adapter=a) for n, a in adapters.items())
    (directory / "test_run.py").write_text(RUN_HEADER + classes)
    (directory / "kit_stop.py").write_text(STOP_PLUGIN)
    (directory / "pytest.ini").write_text(PYTEST_INI)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(EXAMPLE / "src"), str(REPO)]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "kit_stop", "test_run.py", "--junitxml=r.xml"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    failed: dict[str, set[str]] = {n: set() for n in adapters}
    passed: dict[str, set[str]] = {n: set() for n in adapters}
    for case in ET.parse(directory / "r.xml").iter("testcase"):
        adapter = case.get("classname", "").rpartition(".Test_")[2]
        name = case.get("name", "")
        if case.find("failure") is not None or case.find("error") is not None:
            failed[adapter].add(name)
        elif case.find("skipped") is None:
            passed[adapter].add(name)
    output = result.stdout[-6000:]
    return {
        n: KitRun(result.returncode, frozenset(failed[n]), frozenset(passed[n]), output)
        for n in adapters
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KitRun]:
    base = tmp_path_factory.mktemp("kit")
    # The example alone: a mutant's leftovers can never make it fail.
    groups = [{"original": ORIGINAL}] + [
        {m: f"tests.kit_mutants.{m}:Mutant" for m in MUTANTS[i::GROUPS]} for i in range(GROUPS)
    ]
    with ThreadPoolExecutor(len(groups)) as pool:
        futures = [pool.submit(run_kit, g, base / str(i)) for i, g in enumerate(groups)]
        return {name: run for f in futures for name, run in f.result().items()}


def test_there_is_a_mutant_for_each_kind_of_breakage() -> None:
    assert len(MUTANTS) >= 16
    kit_tests = {name for name in dir(AdapterContract) if name.startswith("test_")}
    # Every test of the kit has a mutant that it catches, and every mutant names one.
    assert {caught_by(m) for m in MUTANTS} == kit_tests


def test_the_example_adapter_passes_the_kit(runs: dict[str, KitRun]) -> None:
    run = runs["original"]
    assert run.returncode == 0 and not run.failed, run.output
    assert len(run.passed) >= 10, run.output


@pytest.mark.parametrize("mutant", MUTANTS)
def test_the_kit_catches_the_mutant(runs: dict[str, KitRun], mutant: str) -> None:
    run = runs[mutant]
    expected = caught_by(mutant)
    assert run.failed, f"the kit let {mutant} pass:\n{run.output}"
    assert run.failed == {expected}, (
        f"{mutant} was caught by {sorted(run.failed)}, not by {expected}:\n{run.output}"
    )
