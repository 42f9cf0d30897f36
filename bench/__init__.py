"""The benchmark: ``python -m bench`` (see ``docs/performance.md``); not part of the tests."""
