"""SOAP: call one operation of a Fachverfahren's SOAP interface (zeep), WSDL from a file.

``parameters`` maps each parameter of the operation to a source: ``delivery_id``,
``submission_id``, ``message_uuid``, ``message_type``, ``municipality``, ``sender``,
``xml`` (the XML as received, as text), ``mapped`` (the route's mapped document as rendered
in its format, as text; a delivery without a mapping is permanent) or ``const:<text>``.
SOAP has no standard idempotency header: map ``delivery_id`` to the operation's request or
external id (e.g. ``requestId``, ``externeVorgangsId``) so that the Fachverfahren
recognises a redelivery.

Outcomes: a SOAP fault with a Client/Sender code is permanent, any other fault transient;
HTTP 5xx, 408, 429, timeouts and connection errors are transient, other HTTP errors and
parameters that do not fit the WSDL are permanent.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import zeep
import zeep.exceptions
import zeep.helpers
from pydantic import Field, field_validator
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport

from gateway.sdk import (
    Adapter,
    AdapterSettings,
    Delivery,
    PermanentDeliveryError,
    Receipt,
    TransientDeliveryError,
)

SOURCES = ("delivery_id", "submission_id", "message_uuid", "message_type", "municipality", "sender")


class SoapSettings(AdapterSettings):
    wsdl: Path
    operation: str
    parameters: dict[str, str] = Field(min_length=1)
    endpoint: str | None = None
    """Overrides the WSDL's address (test and production instances share one WSDL)."""
    binding: str | None = None
    """QName ``{namespace}Binding`` for ``endpoint``; default: the WSDL's first port's."""
    reference_field: str | None = "caseNumber"
    """Dotted path to the case number in the answer; ignored when it is a single value."""
    request_timeout_seconds: float = Field(default=30.0, gt=0)

    @field_validator("parameters")
    @classmethod
    def _known_sources(cls, value: dict[str, str]) -> dict[str, str]:
        for name, source in value.items():
            if source not in (*SOURCES, "xml", "mapped") and not source.startswith("const:"):
                raise ValueError(
                    f"{name}: unknown source '{source}' (known: {', '.join(SOURCES)}, xml, mapped, "
                    "const:<text>)"
                )
        return value


class SoapAdapter(Adapter[SoapSettings]):
    settings_model = SoapSettings

    def __init__(self, settings: SoapSettings) -> None:
        super().__init__(settings)
        self._service: Any = None
        self._transport: AsyncTransport | None = None
        self._lock = asyncio.Lock()

    async def _bound(self) -> Any:
        async with self._lock:
            if self._service is None:
                # Parsing the WSDL is synchronous in zeep; keep it off the event loop.
                self._service = await asyncio.to_thread(self._load)
            return self._service

    def _load(self) -> Any:
        s = self.settings
        self._transport = AsyncTransport(
            client=httpx.AsyncClient(timeout=s.request_timeout_seconds),
            wsdl_client=httpx.Client(),
        )
        try:
            client = zeep.AsyncClient(str(s.wsdl), transport=self._transport)
        except (OSError, zeep.exceptions.Error) as exc:
            raise PermanentDeliveryError(f"WSDL {s.wsdl} cannot be loaded: {exc}") from None
        if s.endpoint is None:
            return client.service
        if s.binding is None:
            binding = next(
                p.binding
                for service in client.wsdl.services.values()
                for p in service.ports.values()
            )
        else:
            try:
                binding = client.wsdl.bindings[s.binding]
            except KeyError:
                raise PermanentDeliveryError(f"the WSDL has no binding {s.binding}") from None
        # zeep's create_service() makes a synchronous proxy even on an AsyncClient.
        return AsyncServiceProxy(client, binding, address=s.endpoint)

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()
            self._transport.wsdl_client.close()
            self._transport = None

    async def deliver(self, delivery: Delivery) -> Receipt:
        s = self.settings
        service = await self._bound()
        arguments = {name: _value(delivery, source) for name, source in s.parameters.items()}
        try:
            operation = service[s.operation]
        except AttributeError:
            raise PermanentDeliveryError(f"the WSDL has no operation {s.operation}") from None
        try:
            result = await operation(**arguments)
        except zeep.exceptions.Fault as exc:
            code = str(exc.code or "")
            problem = f"SOAP fault {code}: {exc.message}"
            if code.lower().rsplit(":", 1)[-1].rsplit("}", 1)[-1] in ("client", "sender"):
                raise PermanentDeliveryError(problem) from None
            raise TransientDeliveryError(problem) from None
        except zeep.exceptions.TransportError as exc:
            problem = f"HTTP {exc.status_code}: {str(exc.content)[:200]}"
            if exc.status_code >= 500 or exc.status_code in (408, 429):
                raise TransientDeliveryError(problem) from None
            raise PermanentDeliveryError(problem) from None
        except (zeep.exceptions.ValidationError, TypeError) as exc:
            raise PermanentDeliveryError(f"parameters do not fit the WSDL: {exc}") from None
        except zeep.exceptions.XMLSyntaxError as exc:
            raise TransientDeliveryError(f"unreadable answer: {exc}") from None
        except httpx.TransportError as exc:
            raise TransientDeliveryError(f"connection failed: {type(exc).__name__}") from None
        return Receipt(reference=self._reference(result), message=f"{s.operation} called")

    def _reference(self, result: Any) -> str | None:
        value = zeep.helpers.serialize_object(result)
        if value is None or isinstance(value, str | int):
            return None if value is None else str(value)
        for step in (self.settings.reference_field or "").split("."):
            if not isinstance(value, dict) or step not in value:
                return None
            value = value[step]
        return None if value is None else str(value)


def _value(delivery: Delivery, source: str) -> str:
    if source.startswith("const:"):
        return source.removeprefix("const:")
    if source == "xml":
        return delivery.xml.decode("utf-8")
    if source == "mapped":
        if delivery.payload_body is None:
            raise PermanentDeliveryError("parameter source 'mapped': the route maps no fields")
        return delivery.payload_body.decode("utf-8")
    return str(getattr(delivery, source))
