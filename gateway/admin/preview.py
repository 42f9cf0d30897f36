"""Preview: what each routed destination's adapter would receive for a message, undelivered.

The message goes through the same checks as at intake (parse, schema, routing keys) and
the same ``MappingTable.payload`` as in the worker, so the preview is the delivery.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import JsonValue

from gateway.errors import MissingRoutingKey, NoRoute
from gateway.intake.pipeline import check
from gateway.intake.registry import SchemaRegistry
from gateway.mapping.apply import Payload
from gateway.mapping.table import EffectiveMapping
from gateway.municipality import MunicipalityDirectory, RecipientResolver
from gateway.routing.config import GatewayConfig


@dataclass(frozen=True)
class PreviewDelivery:
    destination: str
    adapter: str
    mapping: EffectiveMapping | None
    payload: Payload | None


@dataclass(frozen=True)
class Preview:
    municipality: str
    municipality_name: str
    message_type: str
    config_version: str
    route: tuple[str, str]
    route_source: str
    deliveries: list[PreviewDelivery]

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "municipality": self.municipality,
            "municipality_name": self.municipality_name,
            "message_type": self.message_type,
            "config_version": self.config_version,
            "route": {
                "municipality": self.route[0] or "*",
                "service": self.route[1],
                "source": self.route_source,
            },
            "deliveries": [
                {
                    "destination": d.destination,
                    "adapter": d.adapter,
                    "format": d.payload.format if d.payload else None,
                    "media_type": d.payload.media_type if d.payload else None,
                    "payload": d.payload.data if d.payload else None,
                    "body": d.payload.body.decode() if d.payload else None,
                }
                for d in self.deliveries
            ],
        }


def preview(
    body: bytes,
    registry: SchemaRegistry,
    directory: MunicipalityDirectory,
    config: GatewayConfig,
    municipality: str | None = None,
) -> Preview:
    """``municipality`` (AGS or ARS) replaces the message's recipient, to try other levels."""
    checked = check(body, registry, RecipientResolver(directory, config.recipients))
    keys = checked.keys
    ags = directory.normalize(municipality) if municipality else keys.municipality
    if ags is None:
        raise MissingRoutingKey(
            f"{keys.header.recipient_missing}; give the municipality to preview for"
        )
    services = (keys.message_type,) + ((keys.leika,) if keys.leika else ())
    route = config.route_key(ags, services)
    name = directory.names.get(ags, "")
    if route is None:
        raise NoRoute(f"no route for municipality {ags} ({name}) and service {keys.message_type}")
    deliveries = []
    for destination in config.routes[route]:
        mapping = config.mappings.effective(ags, keys.message_type, destination)
        deliveries.append(
            PreviewDelivery(
                destination=destination,
                adapter=config.destinations[destination].adapter,
                mapping=mapping,
                payload=config.mappings.payload(ags, keys.message_type, destination, checked.tree),
            )
        )
    return Preview(
        municipality=ags,
        municipality_name=name,
        message_type=keys.message_type,
        config_version=config.version,
        route=route,
        route_source=config.route_sources.get(route, ""),
        deliveries=deliveries,
    )
