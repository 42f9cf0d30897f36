"""Docker does not run here: check what can be checked in the deploy files (structure,
health checks, and that every command and setting they name really exists)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer
import yaml

from gateway.cli import app
from gateway.settings import Settings
from tests.support.gateway_process import REPO

COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
ENV_EXAMPLE = REPO / "deploy" / "scaled.env.example"


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def cli_commands() -> set[str]:
    group = typer.main.get_command(app)
    return set(group.commands)  # type: ignore[attr-defined]


def test_compose_has_the_scaled_services_with_health_checks() -> None:
    services = compose()["services"]
    assert {"api", "worker", "postgres", "rabbitmq"} <= set(services)
    for name, service in services.items():
        check = service.get("healthcheck", {})
        assert check.get("test"), f"{name} has no health check"
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["rabbitmq"]["condition"] == "service_healthy"
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])


def test_compose_keeps_data_in_named_volumes() -> None:
    data = compose()
    volumes = set(data["volumes"])
    for name in ("api", "worker", "postgres", "rabbitmq"):
        named = {v.split(":")[0] for v in data["services"][name]["volumes"]}
        assert named & volumes, f"{name} keeps its data in no named volume"


def test_compose_and_dockerfile_commands_are_real_cli_commands() -> None:
    commands = cli_commands()
    services = compose()["services"]
    assert services["api"]["command"] == ["api"] and services["worker"]["command"] == ["worker"]
    assert {"api", "worker", "relay", "serve"} <= commands
    text = DOCKERFILE.read_text()
    assert 'ENTRYPOINT ["xoev-gateway"]' in text
    (cmd,) = re.findall(r'^CMD \["(\w[\w-]*)"\]', text, re.MULTILINE)
    assert cmd in commands
    for source in copied_from_context(text):
        assert (REPO / source).exists(), f"Dockerfile copies missing {source}"
    for service in ("api", "worker"):
        build = services[service]["build"]
        assert (REPO / build["context"] / build["dockerfile"]).is_file()
        assert (REPO / services[service]["env_file"]).is_file()


def copied_from_context(dockerfile: str) -> list[str]:
    """The build-context paths of every ``COPY`` (not those from another stage)."""
    sources = []
    for line in re.findall(r"^COPY (.+)$", dockerfile, re.MULTILINE):
        args = line.split()
        if not args[0].startswith("--from="):
            sources += args[:-1]
    return sources


def stages(dockerfile: str) -> list[str]:
    """The Dockerfile split at each ``FROM``."""
    return re.split(r"^(?=FROM )", dockerfile, flags=re.MULTILINE)[1:]


def test_dockerfile_builds_the_wheel_and_installs_it() -> None:
    build, runtime = stages(DOCKERFILE.read_text())
    (name,) = re.findall(r"^FROM \S+ AS (\w+)", build, re.MULTILINE)
    assert "pip wheel" in build and "--no-deps" in build
    # Everything the shipped package data links to is in the build stage's context.
    copied = {Path(source) for source in copied_from_context(build)}
    for link in (REPO / "gateway" / "shipped").iterdir():
        if link.is_symlink():
            target = link.resolve().relative_to(REPO)
            assert any(target.is_relative_to(c) for c in copied), f"{target} not copied"
    assert f"COPY --from={name} " in runtime
    install = re.search(r"pip install (.*)", runtime)
    assert install and ".whl" in install.group(1) and "-e" not in install.group(1).split()
    assert not re.search(r"^COPY (gateway|adapters|schemas)\b", runtime, re.MULTILINE)


def test_example_settings_are_real_settings() -> None:
    known = set(Settings.model_fields)
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            assert key.startswith("XOEV_GATEWAY_"), key
            name = key.removeprefix("XOEV_GATEWAY_").lower()
            assert name in known, f"{key} is no setting"
            values[name] = value
    settings = Settings.model_validate(
        {k: yaml.safe_load(v) if k == "rabbitmq_delay_tiers" else v for k, v in values.items()}
    )
    assert settings.broker == "rabbitmq"
    assert settings.store_url.startswith("postgresql+asyncpg://")
