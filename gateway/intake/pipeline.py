"""The intake path: parse once, identify, validate and extract from the same tree.

Intake knows messages and schemas, not the routing config or the store: what happens to a
message that passed is the accept use case (``gateway.accept``).
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from gateway.intake.header import Header
from gateway.intake.registry import SchemaRegistry, SchemaSet
from gateway.intake.routing_keys import RoutingKeys, routing_keys
from gateway.intake.safe_xml import parse_untrusted
from gateway.municipality import RecipientResolver


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
    return tree, schema_set, schema_set.header.read(root, body)


def examine(body: bytes, registry: SchemaRegistry) -> Examined:
    """Parse, identify, validate (XSD, then business rules) and read the header, once."""
    _tree, schema_set, header = _examine(body, registry)
    return Examined(schema_set.id, schema_set.leika, header)


def check(body: bytes, registry: SchemaRegistry, resolver: RecipientResolver) -> Checked:
    """Everything ``xoev-gateway validate`` and the API check, in the same order."""
    tree, schema_set, header = _examine(body, registry)
    return Checked(tree, schema_set, routing_keys(header, resolver, schema_set.leika))
