"""An adapter package type-checks against gateway.sdk under ``mypy --strict``, installed the
way adapters/README.md says for an editable checkout (``editable_mode=compat``)."""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.gateway_process import REPO

pytestmark = pytest.mark.slow

EXAMPLE = REPO / "examples" / "xoev-gateway-adapter-example"


def test_example_package_passes_mypy_strict(tmp_path: Path) -> None:
    # A venv of its own that sees this one's dependencies (pydantic, httpx) through a .pth
    # line, with the checkout installed into it as the README says.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    target_site = subprocess.run(
        [str(python), "-c", "import site; print(site.getsitepackages()[0])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(target_site, "deps.pth").write_text(site.getsitepackages()[0] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--disable-pip-version-check",
            "-q",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-build-isolation",
            "-e",
            str(REPO),
            "--config-settings",
            "editable_mode=compat",
        ],
        check=True,
        capture_output=True,
    )
    package = tmp_path / "example"
    shutil.copytree(EXAMPLE / "src", package / "src")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--python-executable",
            str(python),
            "src",
        ],
        cwd=package,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # Not vacuous: were gateway.sdk unseen (Any), --strict would refuse "Class cannot
    # subclass AdapterSettings (has type Any)", as it does with a default editable install.
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout

