"""Names the token it authenticated with when the case is refused."""

from __future__ import annotations

import httpx
from xoev_gateway_adapter_example.adapter import AktenablageAdapter

from gateway.sdk import PermanentDeliveryError, Receipt

CAUGHT_BY = "test_permanent_failure_is_dead_lettered"


class Mutant(AktenablageAdapter):
    def receipt(self, response: httpx.Response) -> Receipt:
        if 400 <= response.status_code < 500 and response.status_code != 429:
            auth = response.request.headers.get("authorization")
            raise PermanentDeliveryError(f"Aktenablage refused the case (sent {auth})")
        return super().receipt(response)
