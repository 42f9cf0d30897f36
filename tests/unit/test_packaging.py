"""The editable install (``pip install -e .``) builds without any setuptools warning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.gateway_process import REPO

BUILD = """
import sys
from setuptools import build_meta
print(build_meta.build_editable(sys.argv[1]))
"""


def test_editable_build_emits_no_setuptools_warning(tmp_path: Path) -> None:
    # Warnings as errors: setuptools' "Editable installation" box (printed by pip as a
    # BuildBackendWarning) fails the build instead of scrolling by.
    result = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", BUILD, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith(".whl")
    assert "!!" not in result.stderr
