"""Structured logs: one line per lifecycle step, JSON by default, text on a terminal.

Code logs with the stdlib (``logging.getLogger("xoev_gateway....")``) and passes the ids
as fields through :func:`fields` (``extra=``); the formatters here put them into the
line. A line never carries payload values: XML, attachment names, validation messages
(libxml2 and Schematron quote the offending value) and tokens stay out, only ids,
states, problem types and the names of configured things (docs/operations.md, "Logs and
metrics"). The process entry points call :func:`configure` once.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, Literal

LogFormat = Literal["auto", "json", "text"]

FIELDS = "xoev_fields"
"""The ``LogRecord`` attribute that carries a line's structured fields."""

# uvicorn's access logger passes (client, method, path, http version, status) as args.
_ACCESS_ARGS = ("client", "method", "path", "http_version", "status")


def fields(**values: object) -> dict[str, Any]:
    """``extra=`` for a log call: the line's fields (None values are left out)."""
    return {FIELDS: {k: v for k, v in values.items() if v is not None}}


def _record_fields(record: logging.LogRecord) -> dict[str, Any]:
    values: Mapping[str, Any] | None = getattr(record, FIELDS, None)
    args = record.args
    if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
        return dict(zip(_ACCESS_ARGS, args, strict=True))
    return dict(values) if values else {}


def _timestamp(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, the fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _record_fields(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """For a terminal: ``time level logger: message key=value ...``."""

    def format(self, record: logging.LogRecord) -> str:
        text = (
            f"{_timestamp(record.created)} {record.levelname:<7} {record.name}: "
            f"{record.getMessage()}"
        )
        extra = " ".join(f"{k}={_text_value(v)}" for k, v in _record_fields(record).items())
        if extra:
            text = f"{text}  {extra}"
        if record.exc_info:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        return text


def _text_value(value: object) -> str:
    if isinstance(value, str):
        return value if value and " " not in value and '"' not in value else json.dumps(value)
    return json.dumps(value, default=str, ensure_ascii=False)


def configure(level: str = "INFO", log_format: LogFormat = "auto") -> None:
    """Route every logger (ours, uvicorn's, libraries') through one stderr handler.

    ``auto``: text when stderr is a terminal, else JSON (what a log collector reads)."""
    if log_format == "auto":
        log_format = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's own loggers propagate to the root (it configures none: log_config=None).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
