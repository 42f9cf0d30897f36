"""Traces: with an OTLP endpoint set, one trace runs from the accept through the stored
context to the worker's delivery and its adapter call."""

from __future__ import annotations

import gzip
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.observability.conftest import KOELN, XML, marked_message, wait_settled, write_config
from tests.support.gateway_process import GatewayProcess, free_port, gateway_env

pytestmark = pytest.mark.slow


class Collector:
    """An OTLP/HTTP trace receiver: keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest.FromString(body)
                for resource in request.resource_spans:
                    service = {a.key: a.value.string_value for a in resource.resource.attributes}[
                        "service.name"
                    ]
                    for scope in resource.scope_spans:
                        for span in scope.spans:
                            collector.spans.append(
                                {
                                    "service": service,
                                    "name": span.name,
                                    "trace_id": span.trace_id.hex(),
                                    "span_id": span.span_id.hex(),
                                    "parent": span.parent_span_id.hex(),
                                    "attributes": {
                                        a.key: a.value.string_value or a.value.int_value
                                        for a in span.attributes
                                    },
                                }
                            )
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()


def test_one_trace_from_the_accept_to_the_adapter_call(
    tmp_path: Path, collector: Collector
) -> None:
    config = write_config(tmp_path / "config")
    env = gateway_env(
        tmp_path / "data",
        config,
        XOEV_GATEWAY_POLL_SECONDS="0.2",
        XOEV_GATEWAY_OTLP_ENDPOINT=collector.url,
    )
    with GatewayProcess("serve", env, tmp_path / "serve.log") as serve:
        serve.wait_ready()
        with httpx.Client(base_url=serve.url, timeout=30) as client:
            resp = client.post(
                "/v1/submissions", content=marked_message(str(uuid.uuid4()), KOELN), headers=XML
            )
            assert resp.status_code == 202, resp.text
            view = wait_settled(client, resp.headers["location"])
        (delivery,) = view["deliveries"]
        deadline = time.monotonic() + 15
        while not any(s["name"] == "delivery" for s in collector.spans):
            assert time.monotonic() < deadline, collector.spans
            time.sleep(0.2)

    spans = {s["name"]: s for s in collector.spans if s["name"] != "GET"}
    accept, worker, adapter = (
        spans["submission.accept"],
        spans["delivery"],
        spans["adapter.deliver"],
    )
    assert accept["service"] == "xoev-gateway-serve"
    assert accept["trace_id"] == worker["trace_id"] == adapter["trace_id"]
    assert worker["parent"] == accept["span_id"]  # across the queue, through the store
    assert adapter["parent"] == worker["span_id"]
    assert worker["attributes"]["xoev.delivery_id"] == delivery["id"]
    assert worker["attributes"]["xoev.destination"] == "archive"
    assert adapter["attributes"]["xoev.adapter"] == "filedrop"


def test_off_loads_nothing_of_the_sdk() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from gateway.api.app import create_app\n"
        "from gateway.settings import Settings\n"
        "from gateway.telemetry import traces\n"
        "create_app(Settings())\n"
        "with traces.span('x'):\n"
        "    assert traces.traceparent() is None\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
