"""Sends only the attachments' names, not their content (silently dropped)."""

from __future__ import annotations

from typing import Any

from xoev_gateway_adapter_example.adapter import AktenablageAdapter

from gateway.sdk import Delivery

CAUGHT_BY = "test_attachments_arrive"


class Mutant(AktenablageAdapter):
    async def case(self, delivery: Delivery) -> dict[str, Any]:
        case = await super().case(delivery)
        case["anlagen"] = []
        return case
