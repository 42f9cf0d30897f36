"""Runs ``xoev-gateway`` subcommands as real processes on free ports of 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


class GatewayProcess:
    """One gateway process (``serve``, ``api`` or ``worker``); stopped by its pid."""

    def __init__(self, command: str, env: dict[str, str], log: Path) -> None:
        self.command = command
        self.port = free_port() if command in ("serve", "api") else None
        args = [sys.executable, "-m", "gateway", command]
        if self.port is not None:
            args += ["--host", "127.0.0.1", "--port", str(self.port)]
        self.log = log
        self._log_file = log.open("ab")
        self.proc = subprocess.Popen(
            args, env=env, stdout=self._log_file, stderr=subprocess.STDOUT, cwd=REPO
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.command} exited: {self.log.read_text()[-3000:]}")
            if self.port is None:
                if b"worker running" in self.log.read_bytes():
                    return
            else:
                try:
                    if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.command} not ready: {self.log.read_text()[-3000:]}")

    def peak_rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise RuntimeError("no VmHWM")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log_file.close()
