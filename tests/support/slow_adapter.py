"""A file drop that takes its time: lets tests kill a worker while deliveries are leased."""

from __future__ import annotations

import asyncio

from adapters.filedrop import FileDropAdapter, FileDropSettings
from gateway.sdk import Delivery, Receipt


class SlowFileDropSettings(FileDropSettings):
    delay_seconds: float = 0.5


class SlowFileDrop(FileDropAdapter):
    settings_model = SlowFileDropSettings

    async def deliver(self, delivery: Delivery) -> Receipt:
        assert isinstance(self.settings, SlowFileDropSettings)
        await asyncio.sleep(self.settings.delay_seconds)
        return await super().deliver(delivery)
