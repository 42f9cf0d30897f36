"""The reference Fachverfahren as a real process on a free port of 127.0.0.1, with a client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import ServerProcess, free_port, serve


class ReferenceFachverfahren:
    """``xoev-gateway reference-fachverfahren`` as a process, and a client for its admin API."""

    def __init__(self, server: ServerProcess, scheme: str, client: httpx.Client) -> None:
        self.server = server
        self.url = f"{scheme}://127.0.0.1:{server.port}"
        self.http = client

    def reset(self) -> None:
        self.http.post(f"{self.url}/admin/reset").raise_for_status()

    def fail(self, mode: str, count: int | None = None, **extra: Any) -> None:
        body = {"mode": mode, "count": count, **extra}
        self.http.post(f"{self.url}/admin/fail", json=body).raise_for_status()

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self.http.get(f"{self.url}/admin/state").json()
        return result

    def cases(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.http.get(f"{self.url}/cases").json()
        return result


@contextmanager
def reference_fachverfahren(
    directory: Path,
    config: dict[str, Any] | None = None,
    tls: tuple[Path, Path, Path | None] | None = None,
    client: httpx.Client | None = None,
) -> Iterator[ReferenceFachverfahren]:
    """Start one; ``tls`` is (cert, key, client CA or None)."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = ["-m", "gateway", "reference-fachverfahren", "--port", str(port)]
    if config is not None:
        (directory / "reference.json").write_text(json.dumps(config))
        args += ["--config", str(directory / "reference.json")]
    if tls is not None:
        args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
        if tls[2] is not None:
            args += ["--client-ca", str(tls[2])]
    with (
        serve(args, port, directory / "reference.log") as server,
        client or httpx.Client(timeout=10) as http,
    ):
        yield ReferenceFachverfahren(server, "https" if tls else "http", http)
