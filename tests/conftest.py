from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway_process import REPO

SAMPLES = REPO / "schemas" / "samples"
SHARED_XOEV = REPO.parent / "shared" / "xoev"
XBAU_DIR = SHARED_XOEV / "xbau-2.6"
DEMO_SENDER_TOKEN = "demo-sender-token"
DEMO_ADMIN_TOKEN = "demo-admin-token"


def sample(relative: str) -> bytes:
    return (SAMPLES / relative).read_bytes()


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """The example configuration, copied so that file drops land under ``tmp_path/out``."""
    target = tmp_path / "config"
    shutil.copytree(REPO / "deploy" / "config", target)
    return target


@pytest.fixture
def xbau_catalog(tmp_path: Path) -> Iterator[Path]:
    if not XBAU_DIR.is_dir():
        pytest.skip(f"XBau 2.6 schemas not present at {XBAU_DIR} (shared/xoev is not checked out)")
    directory = tmp_path / "xbau-catalog"
    directory.mkdir()
    (directory / "catalog.yaml").write_text(
        "schema_sets:\n"
        "  - id: xbau-2.6\n"
        "    namespace: http://www.xleitstelle.de/xbau/2/6\n"
        '    version: "2.6"\n'
        f"    schema: {XBAU_DIR / 'xbau-nachrichten-baugenehmigung.xsd'}\n"
        "    messages: [baugenehmigung.antrag.0200]\n",
        encoding="utf-8",
    )
    yield directory


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A RabbitMQ vhost of this test run (deleted at the end); fails if RabbitMQ is absent."""
    from tests.support.services import rabbitmq_vhost

    with rabbitmq_vhost() as url:
        yield url
