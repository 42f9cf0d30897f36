"""Never closes its client: connections stay open after the worker closed the adapter."""

from __future__ import annotations

from xoev_gateway_adapter_example.adapter import AktenablageAdapter

CAUGHT_BY = "test_delivers_with_receipt"


class Mutant(AktenablageAdapter):
    async def aclose(self) -> None:
        pass
