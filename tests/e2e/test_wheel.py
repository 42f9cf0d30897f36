"""The wheel, installed outside the repository, runs on its own package data.

Built from a copy of what the Dockerfile's build stage copies, installed into a fresh venv in a
temp directory, run with that directory as cwd. Offline and fast: the venv gets the test venv's
site-packages through a ``.pth`` line (the dependencies, but not the editable install's finder,
since ``.pth`` files in a directory named that way are not processed) and only the wheel is
installed into it, so ``gateway`` there is the wheel's copy, which the first test checks.
"""

from __future__ import annotations

import os
import shutil
import signal
import site
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import DEMO_SENDER_TOKEN
from tests.support.gateway_process import REPO, free_port

pytestmark = pytest.mark.slow

BUILD_CONTEXT = ["pyproject.toml", "README.md", "gateway", "adapters", "schemas", "deploy/config"]
SAMPLE = "samples/hundesteuer/valid/anmeldung-stuttgart.xml"


@dataclass
class Installed:
    wheel: Path
    venv: Path
    cwd: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, capture_output=True, text=True, cwd=self.cwd, env=self.env, timeout=timeout
        )

    def python(self, code: str) -> str:
        result = self.run(str(self.venv / "bin" / "python"), "-c", code)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    @property
    def command(self) -> str:
        return str(self.venv / "bin" / "xoev-gateway")


def _copy_build_context(target: Path) -> None:
    target.mkdir()
    for name in BUILD_CONTEXT:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(
                source,
                target / name,
                symlinks=True,  # gateway/shipped's relative links keep pointing into the copy
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
        else:
            shutil.copy(source, target / name)
    # Junk a developer's checkout may hold: it must not end up in the wheel.
    for junk in ("schemas/__pycache__/x.cpython-311.pyc", "deploy/config/__pycache__/y.pyc"):
        (target / junk).parent.mkdir(parents=True, exist_ok=True)
        (target / junk).write_bytes(b"junk")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    source, dist, venv, cwd = root / "source", root / "dist", root / "venv", root / "cwd"
    _copy_build_context(source)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "--wheel-dir", str(dist), str(source)],
        check=True, cwd=root, timeout=300,
    )  # fmt: skip
    (wheel,) = dist.glob("xoev_gateway-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (venv_site,) = venv.glob("lib/python*/site-packages")
    (venv_site / "test-venv.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--no-deps", "--no-index", "-q", str(wheel)],
        check=True, cwd=root, timeout=300,
    )  # fmt: skip
    cwd.mkdir()
    env = {
        k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("XOEV_")
    }
    return Installed(wheel, venv, cwd, env)


def test_the_wheel_holds_the_package_data_and_no_junk(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
    assert f"gateway/shipped/schemas/{SAMPLE}" in names
    assert "gateway/shipped/schemas/catalog.yaml" in names
    assert "gateway/shipped/schemas/codelists/ags.tsv" in names
    assert "gateway/shipped/config/routes.yaml" in names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "examples/"))]


def test_the_venv_imports_the_wheel_not_the_checkout(installed: Installed) -> None:
    # ``gateway`` is a namespace package: every portion on the path must be the wheel's.
    paths = installed.python(
        "import gateway, gateway.cli, adapters, gateway.shipped as s\n"
        "print(*gateway.__path__, gateway.cli.__file__, adapters.__file__,"
        " s.schemas_dir(), s.example_config_dir())"
    ).split()
    for path in paths:
        assert Path(path).is_relative_to(installed.venv), path


def test_validate_a_shipped_sample(installed: Installed) -> None:
    schemas = installed.python("import gateway.shipped as s; print(s.schemas_dir())")
    result = installed.run(installed.command, "validate", f"{schemas}/{SAMPLE}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "anmeldung-stuttgart.xml: valid hundesteuer-1.0" in result.stdout
    assert "recipient=08111000" in result.stdout


def test_demo_delivers(installed: Installed) -> None:
    workdir = installed.cwd / "demo"
    result = installed.run(installed.command, "demo", "--workdir", str(workdir))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rejected" in result.stdout and "accepted" in result.stdout
    delivered = sorted(p.parent.name for p in (workdir / "out").glob("*/*.xml"))
    assert delivered.count("koeln-archiv") == 2 and "stuttgart-steueramt" in delivered


@pytest.fixture
def served(installed: Installed) -> Iterator[tuple[str, Path, Path]]:
    """``xoev-gateway serve`` without a configuration: the shipped example, copied."""
    port = free_port()
    data = installed.cwd / "serve-data"
    log = installed.cwd / "serve.log"
    env = {**installed.env, "XOEV_GATEWAY_DATA_DIR": str(data), "XOEV_GATEWAY_POLL_SECONDS": "0.2"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            # The shipped example has the public demo tokens: demo mode, explicitly.
            [installed.command, "serve", "--demo", "--host", "127.0.0.1", "--port", str(port)],
            cwd=installed.cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}", data, log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_serve_runs_the_shipped_example_configuration(
    installed: Installed, served: tuple[str, Path, Path]
) -> None:
    url, data, log = served
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    assert "shipped example configuration" in log.read_text()
    assert (data / "example-config" / "routes.yaml").is_file()
    schemas = Path(installed.python("import gateway.shipped as s; print(s.schemas_dir())"))
    resp = httpx.post(
        f"{url}/v1/submissions",
        content=(schemas / SAMPLE).read_bytes(),
        headers={
            "Authorization": f"Bearer {DEMO_SENDER_TOKEN}",
            "Content-Type": "application/xml",
        },
        timeout=30,
    )
    assert resp.status_code == 202, resp.text
    # The example's file drops write beside the copied configuration, inside the data dir.
    out = data / "out" / "stuttgart-steueramt"
    while not list(out.glob("*.xml")):
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
