from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway_process import GatewayProcess, gateway_env


@pytest.fixture
def gateway_settings() -> dict[str, str]:
    """Extra ``XOEV_GATEWAY_*`` environment for the ``gateway`` fixture; override per module."""
    return {"XOEV_GATEWAY_POLL_SECONDS": "0.2"}


@pytest.fixture
def gateway(
    tmp_path: Path, config_dir: Path, gateway_settings: dict[str, str]
) -> Iterator[GatewayProcess]:
    """``xoev-gateway serve`` as a real process on a free port, with the example config."""
    env = gateway_env(tmp_path / "data", config_dir, **gateway_settings)
    proc = GatewayProcess("serve", env, tmp_path / "serve.log")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()
