"""The processes a scenario needs, each on a free port of 127.0.0.1, stopped by its pid."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.workload import REPO


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Server:
    """One server process; ``args`` after ``python -m``."""

    def __init__(self, name: str, args: list[str], workdir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.log = workdir / f"{name}.log"
        self._log_file = self.log.open("ab")
        full_env = dict(os.environ, PYTHONPATH=str(REPO), **env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *args, "--host", "127.0.0.1", "--port", str(self.port)],
            env=full_env,
            cwd=REPO,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        self.wait_ready()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready: {self.log.read_text()[-3000:]}")

    def status_kib(self, key: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
        raise RuntimeError(f"no {key} in /proc/{self.proc.pid}/status")

    def reset_peak_rss(self) -> bool:
        """Reset VmHWM to the current RSS (Linux >= 4.0, own processes)."""
        try:
            Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
        except OSError:
            return False
        return True

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log_file.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def bare(workdir: Path) -> Server:
    return Server("bare", ["bench.bare"], workdir, {})


def gateway_config(workdir: Path) -> Path:
    """The example configuration, copied so that file drops land under ``workdir/out``."""
    target = workdir / "config"
    if not target.exists():
        shutil.copytree(REPO / "deploy" / "config", target)
    return target


def embedded(workdir: Path, name: str = "embedded", **env: str) -> Server:
    data = workdir / f"{name}-data"
    shutil.rmtree(data, ignore_errors=True)
    settings = {
        "XOEV_GATEWAY_DATA_DIR": str(data),
        "XOEV_GATEWAY_CONFIG_DIR": str(gateway_config(workdir)),
        "XOEV_GATEWAY_DEMO": "true",  # the example configuration's public demo tokens
        **env,
    }
    return Server(name, ["gateway", "serve"], workdir, settings)
