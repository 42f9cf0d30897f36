"""Policies of a long-running gateway process (``serve``, ``api``, ``worker``, ``relay``).

They act on the whole interpreter, so only the process entry points apply them; tests,
the adapter contract kit and benchmarks that run a ``Runtime`` in their own process do not.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Take what is loaded now (schemas, config, libraries) out of the cyclic GC's scans.

    Full collections walked that whole heap while requests allocate: 13-60 ms pauses, a
    few per second under load, each one stalling every request in flight (figures in
    docs/performance.md). Frozen objects are still freed by reference counting. What an
    earlier call froze (the configuration a reload replaced) is unfrozen first, so that it
    can be collected.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
