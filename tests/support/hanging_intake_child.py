"""An intake child that never answers one particular body: a hung validation, for the
timeout and crash tests, without stopping processes by signal."""

from __future__ import annotations

import sys
import time

from gateway.intake import child
from gateway.intake.pipeline import Examined, examine
from gateway.intake.registry import SchemaRegistry

HANG = b"<hang/>"


def _hanging_examine(body: bytes, registry: SchemaRegistry) -> Examined:
    if body == HANG:
        time.sleep(3600)
    return examine(body, registry)


child.examine = _hanging_examine  # type: ignore[attr-defined]  # replaces its import

if __name__ == "__main__":
    sys.exit(child.main(sys.argv[1:]))
