"""Server processes for tests and benchmarks: started as ``python <args>`` from the repo on a
port of 127.0.0.1, their output in a log file, ready when a check says so, stopped by their
pid (SIGTERM, then SIGKILL); never by name, since colleagues run the same servers at once.

The one place for "start a server and wait until it is ready": the gateway processes of the
end-to-end tests (``tests.support.gateway_process``), the target servers of the adapter
tests (``tests.support.servers``) and the benchmark (``bench.servers``) all build on it.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


Readiness = Callable[["ServerProcess"], bool]


def accepts_connections(server: ServerProcess) -> bool:
    return port_open(server.port)


def healthy(server: ServerProcess, verify: ssl.SSLContext | bool = True) -> bool:
    """``GET /healthz`` answers 200 (``verify``: how to check the certificate over TLS)."""
    try:
        return httpx.get(f"{server.url}/healthz", timeout=1, verify=verify).status_code == 200
    except httpx.TransportError:
        return False


def logged(text: str) -> Readiness:
    """Ready once the process wrote ``text`` to its log (a process without a port)."""
    return lambda server: text.encode() in server.log.read_bytes()


class ServerProcess:
    """``python <args>`` with the repo as working directory and on ``PYTHONPATH``.

    ``port`` is where the server listens, if it does (the caller puts it into ``args``);
    ``env`` adds to (or overrides) this process's environment.
    """

    def __init__(
        self,
        args: list[str],
        port: int | None,
        log: Path,
        env: Mapping[str, str] | None = None,
        *,
        ready: Readiness = accepts_connections,
    ) -> None:
        self._port = port
        self.log = log
        self.ready = ready
        self._log_file = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
            cwd=REPO,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    @property
    def name(self) -> str:
        return self.log.stem

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{self.name} listens on no port")
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-3000:]}")
            if self.ready(self):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready: {self.log.read_text()[-3000:]}")

    def status_kib(self, key: str) -> int:
        """A ``/proc/<pid>/status`` figure in KiB, e.g. ``VmRSS`` or ``VmHWM`` (peak)."""
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

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log_file.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


@contextmanager
def serve(
    args: list[str],
    port: int | None,
    log: Path,
    env: Mapping[str, str] | None = None,
    *,
    ready: Readiness = accepts_connections,
    timeout: float = 30.0,
) -> Iterator[ServerProcess]:
    """A started and ready :class:`ServerProcess`, stopped on exit (also when never ready)."""
    with ServerProcess(args, port, log, env, ready=ready) as server:
        server.wait_ready(timeout)
        yield server
