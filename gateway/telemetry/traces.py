"""OpenTelemetry traces, off unless configured (docs/operations.md, "Traces").

One trace per submission: the accept (API or FIT-Connect source), then per delivery the
worker's attempt and its adapter call, with the adapters' httpx requests inside. The
queue carries ids only (claim check), so the context travels the same way: the accept
stores its W3C ``traceparent`` with the submission, and the worker continues from it.

Off (the default) nothing of OpenTelemetry's SDK is imported and :func:`span` returns a
shared null context: one ``is None`` test per call. On, it needs the ``tracing`` extra
(``pip install 'xoev-gateway[tracing]'``) and exports over OTLP/HTTP in a background
thread (``BatchSpanProcessor``). The tracer provider is process-global by OpenTelemetry's
design; :func:`configure` sets it once in the process entry points.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

_tracer: Tracer | None = None
_NULL = contextlib.nullcontext()


class TracingUnavailable(RuntimeError):
    """Traces are configured but the ``tracing`` extra is not installed."""


def configure(service: str, endpoint: str) -> None:
    """Export spans to the OTLP/HTTP collector at ``endpoint`` (``http://host:4318``)."""
    global _tracer
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise TracingUnavailable(
            f"traces need the 'tracing' extra (pip install 'xoev-gateway[tracing]'): {exc.name}"
        ) from None
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument()  # the http/soap adapters' requests
    _tracer = trace.get_tracer("xoev_gateway")


def shutdown() -> None:
    """Flush what is buffered (a stopping process)."""
    if _tracer is None:
        return
    from opentelemetry import trace

    provider: Any = trace.get_tracer_provider()
    with contextlib.suppress(Exception):
        provider.shutdown()


def enabled() -> bool:
    return _tracer is not None


def span(
    name: str, attributes: Mapping[str, str | int] | None = None, parent: str | None = None
) -> contextlib.AbstractContextManager[object]:
    """A span around a block (a no-op when traces are off); ``parent``: a W3C
    ``traceparent`` to continue (the stored one of a submission)."""
    if _tracer is None:
        return _NULL
    return _span(_tracer, name, attributes or {}, parent)


@contextlib.contextmanager
def _span(
    tracer: Tracer, name: str, attributes: Mapping[str, str | int], parent: str | None
) -> Iterator[object]:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = None
    if parent is not None:
        context = TraceContextTextMapPropagator().extract({"traceparent": parent})
    with tracer.start_as_current_span(name, context=context, attributes=dict(attributes)) as s:
        yield s


def traceparent() -> str | None:
    """The current span's W3C ``traceparent``, to be stored with a submission."""
    if _tracer is None:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")
