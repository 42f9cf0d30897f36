"""Test helpers for adapter packages (``gateway.testing.adapter_contract``); needs pytest."""
