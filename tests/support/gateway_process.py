"""Runs ``xoev-gateway`` subcommands as real processes on free ports of 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.processes import REPO, ServerProcess, free_port, healthy, logged

__all__ = ["REPO", "GatewayProcess", "free_port", "gateway_env"]


def gateway_env(data_dir: Path, config_dir: Path, **extra: str) -> dict[str, str]:
    """Demo mode is on: the tests run copies of the example configuration, whose senders
    use the public demo tokens (pass ``XOEV_GATEWAY_DEMO="false"`` to test the refusal)."""
    env = dict(os.environ)
    env.update(
        {
            "XOEV_GATEWAY_DATA_DIR": str(data_dir),
            "XOEV_GATEWAY_CONFIG_DIR": str(config_dir),
            "XOEV_GATEWAY_DEMO": "true",
            "PYTHONPATH": str(REPO),
        }
    )
    env.update(extra)
    return env


class GatewayProcess(ServerProcess):
    """One gateway process (``serve``, ``api`` or ``worker``); ready when ``/healthz``
    answers, a worker when it logs that it runs."""

    def __init__(self, command: str, env: dict[str, str], log: Path) -> None:
        self.command = command
        port = free_port() if command in ("serve", "api") else None
        args = ["-m", "gateway", command]
        if port is not None:
            args += ["--host", "127.0.0.1", "--port", str(port)]
        ready = logged("worker running") if port is None else healthy
        super().__init__(args, port, log, env, ready=ready)

    def peak_rss_kib(self) -> int:
        return self.status_kib("VmHWM")
