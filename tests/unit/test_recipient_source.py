"""Where the recipient comes from: transport, message header, sender default (accept)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.accept import Acceptor, Incoming, Source
from gateway.errors import MissingRoutingKey
from gateway.intake.processes import InProcess
from gateway.intake.registry import SchemaRegistry
from gateway.municipality import MunicipalityDirectory
from gateway.routing.config import load_config
from gateway.settings import SHIPPED_SCHEMAS
from gateway.store.states import RecipientSource, WorkState
from gateway.store.store import Store
from tests.contract.backends import sqlite_database
from tests.support import header_messages as m
from tests.support.gateway_process import REPO


async def test_message_then_transport_then_sender_default(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    shutil.copytree(REPO / "deploy" / "config", config_dir)
    (config_dir / "headers.yaml").write_text(m.config_yaml(tmp_path / "out"), encoding="utf-8")
    registry = SchemaRegistry.load([SHIPPED_SCHEMAS, m.HEADERS_DIR])
    directory = MunicipalityDirectory.load(SHIPPED_SCHEMAS / "codelists" / "ags.tsv")
    async with sqlite_database(tmp_path) as db:
        acceptor = Acceptor(
            InProcess(registry), directory, load_config(config_dir), Store(db), WorkState.READY
        )
        fit = Source("fit-connect", {"submission": "s-1"})

        async def prepared(body: bytes, sender: str, recipient: str | None = None) -> object:
            new = await acceptor.prepare(Incoming(body, sender, source=fit, recipient=recipient))
            return new.recipient, new.municipality, new.recipient_source

        assert await prepared(m.fund(), "headers-sender", "ags:08111000") == (
            "ags:08111000",
            "08111000",
            RecipientSource.TRANSPORT,
        )
        # The message's own recipient comes first, then the transport's, then the sender's.
        assert await prepared(m.g2g("ags:05315000"), "headers-default", "ags:08111000") == (
            "ags:05315000",
            "05315000",
            RecipientSource.MESSAGE,
        )
        assert await prepared(m.g2g("ags:08111000"), "headers-default") == (
            "ags:08111000",
            "08111000",
            RecipientSource.MESSAGE,
        )
        assert await prepared(m.fund(), "headers-default") == (
            "ags:05315000",
            "05315000",
            RecipientSource.SENDER,
        )
        with pytest.raises(MissingRoutingKey, match="names no recipient"):
            await prepared(m.fund(), "headers-sender")
