"""The gateway's adapter contract, run against the example adapter and a real target."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import pytest
from conftest import Aktenablage

from gateway.sdk import Receipt
from gateway.testing.adapter_contract import (
    RETRY_AFTER_SECONDS,
    AdapterContract,
    FaultMode,
    TargetCase,
)

# How the target shows each fault the contract kit asks for.
FAULTS = {"transient": "5xx", "permanent": "4xx", "hang": "slow", "throttle": "429"}
TOKEN_ENV = "AKTENABLAGE_TOKEN"  # noqa: S105 - the variable's name, not a secret


class AktenablageTarget:
    def __init__(self, aktenablage: Aktenablage) -> None:
        self.url = aktenablage.url
        self.token = aktenablage.token
        httpx.post(f"{self.url}/admin/reset").raise_for_status()

    def settings(self) -> Mapping[str, Any]:
        return {"base_url": self.url, "ablage": "Hundesteuer", "api_token_env": TOKEN_ENV}

    def secrets(self) -> Mapping[str, str]:
        return {TOKEN_ENV: self.token}

    async def count_cases(self) -> int:
        async with httpx.AsyncClient() as client:
            return int((await client.get(f"{self.url}/admin/state")).json()["cases"])

    async def cases(self) -> Sequence[TargetCase]:
        async with httpx.AsyncClient() as client:
            listed = (await client.get(f"{self.url}/cases")).json()
        found = []
        for case in listed:
            body = json.loads(case["body"])
            anlagen = {a["name"]: base64.b64decode(a["content_base64"]) for a in body["anlagen"]}
            found.append(TargetCase(content=case["body"], attachments=anlagen))
        return found

    async def fail(self, mode: FaultMode, count: int) -> None:
        body = {
            "mode": FAULTS[mode],
            "count": count,
            "slow_seconds": 3,  # a hang outlasts the kit's timeout (2 s)
            "retry_after_seconds": RETRY_AFTER_SECONDS,
        }
        async with httpx.AsyncClient() as client:
            (await client.post(f"{self.url}/admin/fail", json=body)).raise_for_status()


class TestAktenablageContract(AdapterContract):
    adapter = "example-aktenablage"  # by entry-point name: proves the package is installed

    @pytest.fixture
    def target(self, aktenablage: Aktenablage) -> AktenablageTarget:
        return AktenablageTarget(aktenablage)

    def check_receipt(self, receipt: Receipt) -> None:
        assert receipt.reference is not None and receipt.reference.startswith("AZ-")
