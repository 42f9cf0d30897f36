from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway_process import GatewayProcess, gateway_env


@pytest.fixture
def gateway(tmp_path: Path, config_dir: Path) -> Iterator[GatewayProcess]:
    """``xoev-gateway serve`` as a real process on a free port, with the example config."""
    env = gateway_env(tmp_path / "data", config_dir, XOEV_GATEWAY_POLL_SECONDS="0.2")
    proc = GatewayProcess("serve", env, tmp_path / "serve.log")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()
