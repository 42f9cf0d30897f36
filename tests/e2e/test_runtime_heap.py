"""The start-up heap is kept out of the cyclic GC's full scans while the runtime runs."""

from __future__ import annotations

import gc
import shutil
from pathlib import Path

from gateway.runtime import Runtime
from gateway.settings import Settings
from tests.support.gateway_process import REPO


async def test_start_freezes_the_heap_and_stop_releases_it(tmp_path: Path) -> None:
    shutil.copytree(REPO / "deploy" / "config", tmp_path / "config")
    settings = Settings(
        data_dir=tmp_path / "data", config_dir=tmp_path / "config", intake_processes=0
    )
    gc.unfreeze()
    runtime = await Runtime.start(settings, run_worker=True, serve_api=True)
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # schemas, config, libraries
        runtime.reload_config()
        assert gc.get_freeze_count() > 10_000
    finally:
        await runtime.stop()
    assert gc.get_freeze_count() == 0
