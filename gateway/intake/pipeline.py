"""The intake path: parse once, identify, validate and extract from the same tree."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from lxml import etree

from gateway.errors import NoRoute
from gateway.intake.registry import SchemaRegistry, SchemaSet
from gateway.intake.routing_keys import (
    MunicipalityDirectory,
    RecipientResolver,
    RoutingKeys,
    extract,
)
from gateway.intake.safe_xml import parse_untrusted
from gateway.routing.config import GatewayConfig
from gateway.store.records import AttachmentRecord, NewDelivery, NewSubmission

# Delivery ids are derived, not random: the same submission and destination always give
# the same id, which adapters use as idempotency key / file name.
DELIVERY_NAMESPACE = uuid.UUID("6f1d2c3a-8e0b-4f5e-9a77-0c4c1e2b7d10")


@dataclass(frozen=True)
class Checked:
    tree: etree._ElementTree
    schema_set: SchemaSet
    keys: RoutingKeys


def check(body: bytes, registry: SchemaRegistry, resolver: RecipientResolver) -> Checked:
    """Everything ``xoev-gateway validate`` and the API check, in the same order."""
    tree = parse_untrusted(body)
    root = tree.getroot()
    schema_set = registry.identify(root)
    schema_set.validate(tree)
    keys = extract(root, resolver, schema_set.leika)
    return Checked(tree, schema_set, keys)


class Intake:
    def __init__(
        self,
        registry: SchemaRegistry,
        directory: MunicipalityDirectory,
        config: GatewayConfig,
    ) -> None:
        self.registry = registry
        self.directory = directory
        self.config = config
        self.resolver = RecipientResolver(directory, config.recipients)

    def with_config(self, config: GatewayConfig) -> Intake:
        return Intake(self.registry, self.directory, config)

    def prepare(
        self, body: bytes, sender: str, attachments: list[AttachmentRecord]
    ) -> NewSubmission:
        checked = check(body, self.registry, self.resolver)
        keys = checked.keys
        services = (keys.message_type,) + ((keys.leika,) if keys.leika else ())
        destinations = self.config.resolve(keys.municipality, services)
        if not destinations:
            name = self.directory.names.get(keys.municipality, "")
            raise NoRoute(
                f"no route for municipality {keys.municipality} ({name}) and service "
                f"{keys.message_type}"
            )
        content = hashlib.sha256(body)
        for att in attachments:
            content.update(f"\0{att.name}\0{att.sha256}".encode())
        submission_id = str(uuid.uuid4())
        return NewSubmission(
            id=submission_id,
            message_uuid=keys.message_uuid,
            sender=sender,
            content_sha256=content.hexdigest(),
            message_type=keys.message_type,
            schema_set=checked.schema_set.id,
            municipality=keys.municipality,
            recipient=keys.recipient,
            author=keys.author,
            leika=keys.leika,
            config_version=self.config.version,
            xml=body,
            deliveries=[
                NewDelivery(
                    id=str(uuid.uuid5(DELIVERY_NAMESPACE, f"{keys.message_uuid}/{name}")),
                    destination=name,
                    adapter=self.config.destinations[name].adapter,
                )
                for name in destinations
            ],
            attachments=attachments,
        )
