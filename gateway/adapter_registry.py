"""Finds adapters through the entry-point group ``xoev_gateway.adapters``.

A destination names its adapter by entry-point name (``filedrop``) or, for adapters under
development that are not installed yet, by import path (``my_pkg.module:MyAdapter``).
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from gateway.errors import ConfigError
from gateway.sdk import Adapter

GROUP = "xoev_gateway.adapters"

AdapterClass = type[Adapter[Any]]


def available() -> dict[str, str]:
    """Entry-point name -> ``module:attr`` of every installed adapter."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def load_adapter_class(name: str) -> AdapterClass:
    eps = {ep.name: ep for ep in entry_points(group=GROUP)}
    if name in eps:
        obj = eps[name].load()
    elif ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"adapter '{name}' cannot be imported: {exc}") from None
    else:
        known = ", ".join(sorted(eps)) or "none"
        raise ConfigError(f"unknown adapter '{name}' (installed: {known})")
    if not (isinstance(obj, type) and issubclass(obj, Adapter)):
        raise ConfigError(f"adapter '{name}' is not a subclass of gateway.sdk.Adapter")
    return obj
