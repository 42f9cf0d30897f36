"""The intake path: parse once, identify, validate and extract from the same tree."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lxml import etree

from gateway.errors import NoRoute
from gateway.intake.registry import SchemaRegistry, SchemaSet
from gateway.intake.routing_keys import (
    Header,
    MunicipalityDirectory,
    RecipientResolver,
    RoutingKeys,
    read_header,
)
from gateway.intake.safe_xml import parse_untrusted
from gateway.routing.config import GatewayConfig
from gateway.store.records import AttachmentRecord, NewDelivery, NewSubmission

if TYPE_CHECKING:
    from gateway.intake.processes import Examiner

# Delivery ids are derived, not random: the same submission and destination always give
# the same id, which adapters use as idempotency key / file name.
DELIVERY_NAMESPACE = uuid.UUID("6f1d2c3a-8e0b-4f5e-9a77-0c4c1e2b7d10")


@dataclass(frozen=True)
class Checked:
    tree: etree._ElementTree
    schema_set: SchemaSet
    keys: RoutingKeys


@dataclass(frozen=True)
class Examined:
    """What intake learns without the routing config: small and picklable, so that it can
    come back from an intake process."""

    schema_set: str
    leika: str | None
    header: Header


def _examine(body: bytes, registry: SchemaRegistry) -> tuple[etree._ElementTree, SchemaSet, Header]:
    tree = parse_untrusted(body)
    root = tree.getroot()
    schema_set = registry.identify(root)
    schema_set.validate(tree)
    return tree, schema_set, read_header(root)


def examine(body: bytes, registry: SchemaRegistry) -> Examined:
    """Parse, identify, validate (XSD, then business rules) and read the header, once."""
    _tree, schema_set, header = _examine(body, registry)
    return Examined(schema_set.id, schema_set.leika, header)


def check(body: bytes, registry: SchemaRegistry, resolver: RecipientResolver) -> Checked:
    """Everything ``xoev-gateway validate`` and the API check, in the same order."""
    tree, schema_set, header = _examine(body, registry)
    return Checked(tree, schema_set, header.keys(resolver, schema_set.leika))


class Intake:
    def __init__(
        self,
        examiner: Examiner,
        directory: MunicipalityDirectory,
        config: GatewayConfig,
    ) -> None:
        self.examiner = examiner
        self.directory = directory
        self.config = config
        self.resolver = RecipientResolver(directory, config.recipients)

    def with_config(self, config: GatewayConfig) -> Intake:
        return Intake(self.examiner, self.directory, config)

    async def prepare(
        self, body: bytes, sender: str, attachments: list[AttachmentRecord]
    ) -> NewSubmission:
        examined = await self.examiner.examine(body)
        keys = examined.header.keys(self.resolver, examined.leika)
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
            schema_set=examined.schema_set,
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
