"""Always sends the raw XML, ignoring the route's mapping."""

from __future__ import annotations

from typing import Any

from xoev_gateway_adapter_example.adapter import AktenablageAdapter

from gateway.sdk import Delivery

CAUGHT_BY = "test_mapped_payload_is_delivered"


class Mutant(AktenablageAdapter):
    async def case(self, delivery: Delivery) -> dict[str, Any]:
        case = await super().case(delivery)
        case.pop("daten", None)
        case["antrag_xml"] = delivery.xml.decode("utf-8")
        return case
