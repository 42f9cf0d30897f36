"""Operators' traps: a reading command run from elsewhere, a route change that strands
mapping tests. The CLI runs as a subprocess, as an operator runs it."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

from gateway.store.database import Database
from gateway.store.migrate import migrate
from tests.support.gateway_process import REPO


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XOEV_GATEWAY_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def config_copy(tmp_path: Path) -> Path:
    config = tmp_path / "config"
    shutil.copytree(REPO / "deploy" / "config", config)
    return config


def make_store(data_dir: Path) -> None:
    async def create() -> None:
        data_dir.mkdir(parents=True)
        db = Database.open(f"sqlite:///{data_dir / 'gateway.db'}")
        try:
            await migrate(db)
        finally:
            await db.close()

    asyncio.run(create())


def test_dead_letters_list_elsewhere_refuses_to_create_a_store(tmp_path: Path) -> None:
    config = config_copy(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run("dead-letters", "list", "--config", str(config), cwd=elsewhere)
    assert result.returncode == 9, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(elsewhere / "var" / "gateway.db") in lines[0]
    assert "nothing was created" in lines[0]
    assert not (elsewhere / "var").exists()


def test_dead_letters_list_finds_the_store_from_the_configuration(tmp_path: Path) -> None:
    config = config_copy(tmp_path)
    make_store(tmp_path / "data")
    # Relative to the configuration directory, wherever the command runs.
    (config / "gateway.env").write_text("XOEV_GATEWAY_DATA_DIR=../data\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run("dead-letters", "list", "--config", str(config), cwd=elsewhere)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (elsewhere / "var").exists()
    assert not (config / "var").exists()


def test_config_check_reports_mapping_tests_a_route_change_left_behind(
    tmp_path: Path,
) -> None:
    config = config_copy(tmp_path)
    assert run("config", "check", "--config", str(config), cwd=tmp_path).returncode == 0
    routes = config / "routes.yaml"
    # Stuttgart's Hundesteuer now goes to the Land's procedure: its mapping test still
    # expects output for stuttgart-steueramt.
    stuttgart = (
        '  - {municipality: "08111000", service: hundesteuer.anmeldung.0101, '
        "destinations: [stuttgart-steueramt]}\n"
    )
    assert stuttgart in routes.read_text()
    routes.write_text(routes.read_text().replace(stuttgart, ""))
    result = run("config", "check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 6, result.stdout + result.stderr
    assert "anmeldung-stuttgart.stuttgart-steueramt.json" in result.stdout
    assert "no longer match a route" in result.stderr
    assert "ok (version" not in result.stdout
