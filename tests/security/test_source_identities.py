"""Senders a source authenticates itself (FIT-Connect: ``fit-connect:<destinationId>``) get
grants like any other but no token; an identity nobody configured is our configuration's
problem, not a rejection: the source leaves the submission with its transport."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.accept import Incoming, Source
from gateway.errors import NotPermitted, UnknownSender
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.sources.base import is_rejection
from tests.conftest import sample
from tests.support.gateway_process import REPO
from tests.support.messages import with_new_uuid

FIT = Source("fit-connect", {"submission_id": "s-1"})


async def test_transport_identities_have_grants_and_no_token(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(REPO / "deploy" / "config", config)
    (config / "fit-connect-senders.yaml").write_text(
        "senders:\n  'fit-connect:dest-muenchen':\n    services: ['*']\n    regions: ['09162']\n"
    )
    settings = Settings(data_dir=tmp_path / "data", config_dir=config, intake_processes=0)
    runtime = await Runtime.start(settings, run_worker=False)
    try:
        assert "fit-connect:dest-muenchen" in runtime.config.senders
        _, muenchen = with_new_uuid(sample("hundesteuer/valid/anmeldung-muenchen.xml"))
        accepted = await runtime.accept(Incoming(muenchen, "fit-connect:dest-muenchen", source=FIT))
        view = await runtime.store.submission(accepted.id)
        assert view.sender == "fit-connect:dest-muenchen"

        _, stuttgart = with_new_uuid(sample("hundesteuer/valid/anmeldung-stuttgart.xml"))
        with pytest.raises(NotPermitted) as refused:
            await runtime.accept(Incoming(stuttgart, "fit-connect:dest-muenchen", source=FIT))
        assert refused.value.rule == "regions" and is_rejection(refused.value)

        with pytest.raises(UnknownSender) as unknown:
            await runtime.accept(Incoming(muenchen, "fit-connect:nobody", source=FIT))
        assert not is_rejection(unknown.value)
    finally:
        await runtime.stop()
