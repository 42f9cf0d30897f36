"""The shipped package data and the copy of the example configuration a running gateway uses."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.settings import Settings
from gateway.shipped import copy_example_config, example_config_dir, schemas_dir
from tests.support.gateway_process import REPO


def test_shipped_data_is_the_repositorys_top_level_folders() -> None:
    assert schemas_dir() == REPO / "schemas"
    assert example_config_dir() == REPO / "deploy" / "config"


def test_without_a_config_dir_the_settings_read_the_shipped_example(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("XOEV_GATEWAY_CONFIG_DIR", raising=False)
    settings = Settings(_env_file=None)
    assert settings.config_dir is None
    assert settings.config_source == example_config_dir()
    assert settings.municipality_list.is_relative_to(schemas_dir())


def test_copy_brings_the_target_up_to_date(tmp_path: Path) -> None:
    target = copy_example_config(tmp_path / "example-config")
    shipped = sorted(p.relative_to(example_config_dir()) for p in example_config_dir().rglob("*"))
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == shipped

    routes = target / "routes.yaml"
    routes.write_text("changed")
    (target / "old.yaml").write_text("no longer shipped")
    (target / ".routes.yaml.in-flight").write_text("another process's copy")
    copy_example_config(target)
    assert routes.read_bytes() == (example_config_dir() / "routes.yaml").read_bytes()
    assert not (target / "old.yaml").exists()
    assert (target / ".routes.yaml.in-flight").exists()


def test_config_test_update_refuses_to_write_into_the_shipped_example() -> None:
    result = CliRunner().invoke(app, ["config", "test", "--update"])
    assert result.exit_code == 2
    assert "--config" in result.output
