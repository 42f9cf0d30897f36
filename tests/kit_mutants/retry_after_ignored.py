"""Drops the target's Retry-After: retried at once, as if the target had not asked."""

from __future__ import annotations

import httpx
from xoev_gateway_adapter_example.adapter import AktenablageAdapter

from gateway.sdk import Receipt, TransientDeliveryError

CAUGHT_BY = "test_retry_hint_is_honoured"


class Mutant(AktenablageAdapter):
    def receipt(self, response: httpx.Response) -> Receipt:
        try:
            return super().receipt(response)
        except TransientDeliveryError as exc:
            raise TransientDeliveryError(str(exc)) from None
