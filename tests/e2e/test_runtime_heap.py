"""A server process keeps its start-up heap out of the cyclic GC's full scans; a runtime
run by anyone else (a test, the contract kit) leaves the process's GC alone."""

from __future__ import annotations

import gc
import shutil
from pathlib import Path

from gateway.process import freeze_startup_heap
from gateway.runtime import Runtime
from gateway.settings import Settings
from tests.support.gateway_process import REPO


def _settings(tmp_path: Path) -> Settings:
    shutil.copytree(REPO / "deploy" / "config", tmp_path / "config")
    # The example configuration: its public demo tokens need demo mode.
    return Settings(
        data_dir=tmp_path / "data", config_dir=tmp_path / "config", intake_processes=0, demo=True
    )


async def test_a_server_process_freezes_the_loaded_heap_and_again_after_a_reload(
    tmp_path: Path,
) -> None:
    gc.unfreeze()
    runtime = await Runtime.start(
        _settings(tmp_path), run_worker=True, serve_api=True, on_loaded=freeze_startup_heap
    )
    try:
        assert gc.get_freeze_count() > 10_000  # schemas, config, libraries
        old_config = runtime.config
        runtime.reload_config()
        assert runtime.config is not old_config
        assert gc.get_freeze_count() > 10_000
    finally:
        await runtime.stop()
        gc.unfreeze()


async def test_a_runtime_alone_does_not_freeze_the_process(tmp_path: Path) -> None:
    gc.unfreeze()
    runtime = await Runtime.start(_settings(tmp_path), run_worker=True, serve_api=True)
    try:
        runtime.reload_config()
        assert gc.get_freeze_count() == 0
    finally:
        await runtime.stop()
