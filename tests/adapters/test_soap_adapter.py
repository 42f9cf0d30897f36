"""The ``soap`` adapter against the reference Fachverfahren's SOAP endpoint (a real process)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from adapters.soap import SoapAdapter, SoapSettings
from gateway.reference_fachverfahren import WSDL_FILE
from gateway.testing.adapter_contract import (
    AdapterContract,
    FaultMode,
    TargetCase,
    WorkerHarness,
)
from tests.support.mapped import FORMATS, mapped_delivery, previewed
from tests.support.servers import ReferenceFachverfahren, reference_fachverfahren

FAULTS = {"transient": "5xx", "permanent": "4xx", "hang": "slow"}
PARAMETERS = {
    "requestId": "delivery_id",
    "messageType": "message_type",
    "municipality": "municipality",
    "document": "xml",
}


@pytest.fixture(scope="module")
def soap_fv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceFachverfahren]:
    with reference_fachverfahren(tmp_path_factory.mktemp("fv-soap")) as fv:
        yield fv


class SoapTarget:
    def __init__(self, fv: ReferenceFachverfahren) -> None:
        self.fv = fv

    def settings(self) -> Mapping[str, Any]:
        return {
            "wsdl": str(WSDL_FILE),
            "endpoint": f"{self.fv.url}/soap",
            "operation": "CreateCase",
            "parameters": PARAMETERS,
        }

    def secrets(self) -> Mapping[str, str]:
        return {}

    async def count_cases(self) -> int:
        return int(self.fv.state()["cases"])

    async def cases(self) -> list[TargetCase]:
        raise NotImplementedError  # attachments and mappings do not apply (see below)

    async def fail(self, mode: FaultMode, count: int) -> None:
        if mode == "throttle":
            raise NotImplementedError
        self.fv.fail(FAULTS[mode], count, slow_seconds=3)


@pytest.fixture
def target(soap_fv: ReferenceFachverfahren) -> SoapTarget:
    soap_fv.reset()
    return SoapTarget(soap_fv)


class TestSoapAdapterContract(AdapterContract):
    adapter = "soap"
    attachments = ()  # parameters come from the delivery's fields, not attachments
    mapping = None  # ... nor from a mapping

    def check_receipt(self, receipt: Any) -> None:
        assert receipt.reference.startswith("AZ-")


async def test_the_case_holds_the_xml_and_the_request_id(
    tmp_path: Path, target: SoapTarget
) -> None:
    async with WorkerHarness(tmp_path / "gw", "soap", target.settings()) as h:
        outcome = await h.settled(await h.submit())
    assert outcome.state == "delivered", outcome.problem
    (case,) = target.fv.cases()
    assert case["channel"] == "soap" and case["idempotency_key"] == outcome.delivery_id
    assert case["body"].startswith("<?xml") and "Weidmann" in case["body"]
    assert outcome.receipt is not None and outcome.receipt.reference == case["case_number"]


async def test_http_429_is_transient(tmp_path: Path, target: SoapTarget) -> None:
    target.fv.fail("429", 1, retry_after_seconds=0)
    async with WorkerHarness(tmp_path / "gw", "soap", target.settings()) as h:
        outcome = await h.settled(await h.submit())
    assert outcome.state == "delivered" and outcome.attempts == 2


async def test_unknown_operation_is_permanent(tmp_path: Path, target: SoapTarget) -> None:
    settings = {**target.settings(), "operation": "DeleteEverything"}
    async with WorkerHarness(tmp_path / "gw", "soap", settings) as h:
        outcome = await h.settled(await h.submit())
    assert outcome.state == "dead" and "no operation DeleteEverything" in (outcome.problem or "")


def test_unknown_parameter_source_is_a_config_error() -> None:
    from pydantic import ValidationError

    from adapters.soap import SoapSettings

    with pytest.raises(ValidationError, match="unknown source 'payload'"):
        SoapSettings.model_validate(
            {"wsdl": "x.wsdl", "operation": "Op", "parameters": {"a": "payload"}}
        )


@pytest.mark.parametrize("fmt", FORMATS)
async def test_mapped_parameter_is_the_previewed_rendering(target: SoapTarget, fmt: str) -> None:
    settings = {**target.settings(), "parameters": {**PARAMETERS, "document": "mapped"}}
    adapter = SoapAdapter(SoapSettings.model_validate(settings))
    try:
        await adapter.deliver(mapped_delivery(fmt))
    finally:
        await adapter.aclose()
    (case,) = target.fv.cases()
    assert case["body"].encode() == previewed(fmt)[1].body
