"""``fit-connect.yaml`` in the configuration directory: checked with file and line when the
configuration loads (``config check``, start, reload); a reload restarts the source only
when its settings or keys changed, and a broken file refuses the whole reload."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.routing.config import load_config
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.sources.fitconnect.settings import load
from tests.fitconnect.conftest import KeyRing

REPO = Path(__file__).resolve().parents[2]
DESTINATION = "5d3b1a52-8f0e-4c55-9a41-2b7e6f0c9d11"


def fit_yaml(poll_interval: float = 30, extra: str = "") -> str:
    return (
        "destinations:\n"
        f"  - destination_id: {DESTINATION}\n"
        "    token_url: http://127.0.0.1:9/token\n"
        "    api_base_url: http://127.0.0.1:9\n"
        "    client_id: subscriber\n"
        "    client_secret_env: FIT_CLIENT_SECRET\n"
        "    decryption_key_files: [keys/encryption.jwk.json]\n"
        "    signing_key_file: keys/signing.jwk.json\n"
        f"    poll_interval: {poll_interval}\n" + extra
    )


@pytest.fixture
def config(tmp_path: Path, test_keys: KeyRing) -> Path:
    target = tmp_path / "config"
    shutil.copytree(REPO / "deploy" / "config", target)
    (target / "keys").mkdir()
    test_keys.write(target / "keys")
    (target / "fit-connect.yaml").write_text(fit_yaml())
    return target


def test_loads_with_key_paths_relative_to_the_file(config: Path) -> None:
    settings = load(config)
    assert settings is not None
    [destination] = settings.destinations
    assert destination.signing_key_file == config / "keys" / "signing.jwk.json"
    # the routing configuration leaves the file to its own loader, but counts it in the version
    before = load_config(config).version
    (config / "fit-connect.yaml").write_text(fit_yaml(poll_interval=5))
    assert load_config(config).version != before


def test_no_file_no_source(tmp_path: Path) -> None:
    assert load(tmp_path) is None


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (fit_yaml(extra="    secret: x\n"), 10, "destinations.0.secret: unknown key"),
        (fit_yaml().replace(DESTINATION, "not-a-uuid"), 2, "destination_id must be a UUID"),
        (fit_yaml(poll_interval=-1), 9, "destinations.0.poll_interval"),
        ("destinations: [\n", 2, "invalid YAML"),
    ],
)
def test_errors_name_file_and_line(config: Path, text: str, where: int, message: str) -> None:
    (config / "fit-connect.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load(config)
    assert caught.value.detail.startswith(f"{config / 'fit-connect.yaml'}:{where}: ")
    assert message in caught.value.detail


def test_a_key_file_others_may_read_is_refused(config: Path) -> None:
    (config / "keys" / "signing.jwk.json").chmod(0o644)
    with pytest.raises(ConfigError, match=r"fit-connect.yaml:2: destinations.0: .*use 0600"):
        load(config)


def test_a_missing_key_file_is_named(config: Path) -> None:
    (config / "keys" / "encryption.jwk.json").unlink()
    with pytest.raises(ConfigError, match=r"encryption.jwk.json: cannot read the key file"):
        load(config)


def test_config_check_validates_it(config: Path) -> None:
    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway", "config", "check", "--config", str(config)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )

    ok = check()
    assert ok.returncode == 0, ok.stderr
    assert "1 FIT-Connect destinations" in ok.stdout
    (config / "fit-connect.yaml").write_text(fit_yaml().replace("client_id", "clientid"))
    refused = check()
    assert refused.returncode != 0
    assert refused.stderr.startswith(f"error: {config / 'fit-connect.yaml'}:")
    assert f"{config / 'fit-connect.yaml'}:5: destinations.0.clientid: unknown key" in (
        refused.stderr
    )
    assert "Tuple" not in refused.stderr


@pytest.fixture
async def runtime(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Runtime]:
    monkeypatch.setenv("FIT_CLIENT_SECRET", "s3cret")
    settings = Settings(
        data_dir=tmp_path / "data", config_dir=config, intake_processes=0, demo=True
    )
    runtime = await Runtime.start(settings, run_worker=False, serve_api=True)
    try:
        yield runtime
    finally:
        await runtime.stop()


async def test_reload_restarts_the_source_only_when_it_changed(
    runtime: Runtime, config: Path
) -> None:
    first = runtime.fit_connect
    assert first is not None
    await asyncio.sleep(0)
    assert first.running

    runtime.reload_config()  # unchanged: the same source keeps running
    assert runtime.fit_connect is first

    (config / "fit-connect.yaml").write_text(fit_yaml(poll_interval=5))
    runtime.reload_config()
    second = runtime.fit_connect
    assert second is not None and second is not first
    assert second.settings.destinations[0].poll_interval == 5
    await asyncio.sleep(0.1)
    assert second.running and not first.running

    # a broken file refuses the whole reload; the running source stays
    (config / "fit-connect.yaml").write_text(fit_yaml(poll_interval=0))
    with pytest.raises(ConfigError, match="fit-connect.yaml:9"):
        runtime.reload_config()
    assert runtime.fit_connect is second and second.running

    (config / "fit-connect.yaml").unlink()
    runtime.reload_config()
    assert runtime.fit_connect is None
    assert runtime.sources_state() == {}


async def test_no_sources_setting_checks_but_does_not_poll(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIT_CLIENT_SECRET", "s3cret")
    settings = Settings(
        data_dir=tmp_path / "data",
        config_dir=config,
        intake_processes=0,
        sources=False,
        demo=True,
    )
    runtime = await Runtime.start(settings, run_worker=False, serve_api=True)
    try:
        await asyncio.sleep(0.1)
        assert runtime.fit_connect is not None
        assert runtime.sources_state()["fit-connect"]["running"] is False  # type: ignore[index]
    finally:
        await runtime.stop()


async def test_a_missing_secret_stops_the_start(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIT_CLIENT_SECRET", raising=False)
    settings = Settings(
        data_dir=tmp_path / "data", config_dir=config, intake_processes=0, demo=True
    )
    with pytest.raises(ConfigError, match="FIT_CLIENT_SECRET is not set"):
        await Runtime.start(settings, run_worker=False, serve_api=True)
