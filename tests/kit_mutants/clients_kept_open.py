"""Keeps every client it made in a registry and never closes them: nothing is left to the
garbage collector (no ResourceWarning), the connections just stay open."""

from __future__ import annotations

from typing import ClassVar

import httpx
from xoev_gateway_adapter_example.adapter import AktenablageAdapter, AktenablageSettings

CAUGHT_BY = "test_connections_are_released"


class Mutant(AktenablageAdapter):
    clients: ClassVar[list[httpx.AsyncClient]] = []

    def __init__(self, settings: AktenablageSettings) -> None:
        super().__init__(settings)
        self.clients.append(self._client)

    async def aclose(self) -> None:
        pass
