"""Settings from the environment: path lists, and one line per wrong variable."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support import header_messages as m
from tests.support.gateway_process import REPO

G2G = str(m.HEADERS_DIR)


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={**os.environ, **env},
    )


@pytest.mark.parametrize("value", [G2G, f"{G2G}:", json.dumps([G2G])])
def test_schema_dirs_take_a_path_list_or_json(value: str) -> None:
    result = run("schema", "fields", "antrag.test.0001", XOEV_GATEWAY_SCHEMA_DIRS=value)
    assert result.returncode == 0, result.stderr
    assert "test-g2g-1.0" in result.stdout


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "XOEV_GATEWAY_SCHEMA_DIRS",
            "[broken",
            "error: XOEV_GATEWAY_SCHEMA_DIRS: Value error, not a JSON list",
        ),
        ("XOEV_GATEWAY_PORT", "abc", "error: XOEV_GATEWAY_PORT: Input should be a valid integer"),
        (
            "XOEV_GATEWAY_BROKER",
            "kafka",
            "error: XOEV_GATEWAY_BROKER: Input should be 'embedded' or 'rabbitmq'",
        ),
    ],
)
def test_a_wrong_setting_is_one_line(variable: str, value: str, message: str) -> None:
    for command in (["validate", "x.xml"], ["serve"]):
        result = run(*command, **{variable: value})
        assert result.returncode == 9
        assert result.stderr.startswith(message), result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
