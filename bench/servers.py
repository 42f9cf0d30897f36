"""The servers a scenario needs, each on a free port of 127.0.0.1, stopped by its pid.

Started by ``tests.support.processes``, the one module for server processes, which the test
suite uses too: the benchmark is a tool of this repository, run from its checkout
(``python -m bench``), so ``tests`` is importable, while the test suite should not depend on
benchmark code.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.processes import REPO, ServerProcess, free_port, healthy


def http_server(name: str, args: list[str], workdir: Path, env: dict[str, str]) -> ServerProcess:
    """``python -m <args> --host 127.0.0.1 --port <free>``, returned once ``/healthz``
    answers; stop it, or use it as a context manager."""
    port = free_port()
    argv = ["-m", *args, "--host", "127.0.0.1", "--port", str(port)]
    server = ServerProcess(argv, port, workdir / f"{name}.log", env, ready=healthy)
    try:
        server.wait_ready(timeout=60)
    except BaseException:
        server.stop()
        raise
    return server


def bare(workdir: Path) -> ServerProcess:
    return http_server("bare", ["bench.bare"], workdir, {})


def gateway_config(workdir: Path) -> Path:
    """The example configuration, copied so that file drops land under ``workdir/out``."""
    target = workdir / "config"
    if not target.exists():
        shutil.copytree(REPO / "deploy" / "config", target)
    return target


def embedded(workdir: Path, name: str = "embedded", **env: str) -> ServerProcess:
    data = workdir / f"{name}-data"
    shutil.rmtree(data, ignore_errors=True)
    settings = {
        "XOEV_GATEWAY_DATA_DIR": str(data),
        "XOEV_GATEWAY_CONFIG_DIR": str(gateway_config(workdir)),
        "XOEV_GATEWAY_DEMO": "true",  # the example configuration's public demo tokens
        **env,
    }
    return http_server(name, ["gateway", "serve"], workdir, settings)
