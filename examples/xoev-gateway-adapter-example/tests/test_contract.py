"""The gateway's adapter contract, run against the example adapter and a real target."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from gateway.sdk import Receipt
from gateway.testing.adapter_contract import AdapterContract, FaultMode

# How the target shows each fault the contract kit asks for.
FAULTS = {"transient": "5xx", "permanent": "4xx", "hang": "slow"}


class AktenablageTarget:
    def __init__(self, url: str) -> None:
        self.url = url
        httpx.post(f"{url}/admin/reset").raise_for_status()

    def settings(self) -> Mapping[str, Any]:
        return {"base_url": self.url, "ablage": "Hundesteuer"}

    async def count_cases(self) -> int:
        async with httpx.AsyncClient() as client:
            return int((await client.get(f"{self.url}/admin/state")).json()["cases"])

    async def fail(self, mode: FaultMode, count: int) -> None:
        async with httpx.AsyncClient() as client:
            body = {"mode": FAULTS[mode], "count": count, "slow_seconds": 3}
            (await client.post(f"{self.url}/admin/fail", json=body)).raise_for_status()


class TestAktenablageContract(AdapterContract):
    adapter = "example-aktenablage"  # by entry-point name: proves the package is installed

    @pytest.fixture
    def target(self, aktenablage_url: str) -> AktenablageTarget:
        return AktenablageTarget(aktenablage_url)

    def check_receipt(self, receipt: Receipt) -> None:
        assert receipt.reference is not None and receipt.reference.startswith("AZ-")
