"""Routing keys from the Nachrichtenkopf: who sent what to which municipality."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from gateway.errors import MissingRoutingKey
from gateway.municipality import RecipientResolver


@dataclass(frozen=True)
class RoutingKeys:
    message_uuid: str
    message_type: str
    author: str | None
    recipient: str
    municipality: str
    leika: str | None


def _local(tag: object) -> str:
    return str(tag).rpartition("}")[2]


def _child(parent: etree._Element | None, name: str) -> etree._Element | None:
    # Headers differ in namespace (XBau leaves them unqualified, others qualify them), so
    # match on local names. A plain loop is faster than ``iterchildren`` (~2 µs to set
    # up) or ElementPath's ``{*}`` wildcard, which walks in Python too.
    if parent is None:
        return None
    for child in parent:
        if isinstance(child.tag, str) and _local(child.tag) == name:
            return child
    return None


def _text(element: etree._Element | None) -> str | None:
    value = element.text if element is not None else None
    return value.strip() if value and value.strip() else None


@dataclass(frozen=True)
class Header:
    """What the Nachrichtenkopf says, before the recipient is resolved against the config."""

    message_uuid: str
    message_type: str
    author: str | None
    recipient: str

    def keys(self, resolver: RecipientResolver, leika: str | None) -> RoutingKeys:
        return RoutingKeys(
            message_uuid=self.message_uuid,
            message_type=self.message_type,
            author=self.author,
            recipient=self.recipient,
            municipality=resolver.resolve(self.recipient),
            leika=leika,
        )


_HEADER = "nachrichtenkopf.g2g"
# One compiled XPath per header namespace reads all three values in one C call (~3 µs);
# the local-name walk below costs ~20 µs in Python and only runs when this finds no
# UUID or recipient, to name exactly what is missing.
_header_paths: dict[str, etree.XPath] = {}


def _header_path(namespace: str) -> etree.XPath:
    path = _header_paths.get(namespace)
    if path is None:
        p = "h:" if namespace else ""
        values = [
            f"normalize-space({p}identifikation.nachricht/{p}nachrichtenUUID)",
            f"normalize-space({p}leser/{p}kennung)",
            f"normalize-space({p}autor/{p}kennung)",
        ]
        path = etree.XPath(
            "concat(" + ", '\n', ".join(values) + ")",
            namespaces={"h": namespace} if namespace else None,
        )
        _header_paths[namespace] = path
    return path


def read_header(root: etree._Element) -> Header:
    header = _child(root, _HEADER)
    if header is None:
        raise MissingRoutingKey("the message has no nachrichtenkopf.g2g")
    tag = str(header.tag)
    namespace = tag[1 : tag.index("}")] if tag[0] == "{" else ""
    # normalize-space leaves no newline inside a value, so the separator is unambiguous
    uuid, recipient, author = str(_header_path(namespace)(header)).split("\n")
    if uuid and recipient:
        return Header(uuid.lower(), _local(root.tag), author or None, recipient)
    return _walk_header(root, header)


def _walk_header(root: etree._Element, header: etree._Element) -> Header:
    uuid = _text(_child(_child(header, "identifikation.nachricht"), "nachrichtenUUID"))
    if uuid is None:
        raise MissingRoutingKey(
            "nachrichtenkopf.g2g has no identifikation.nachricht/nachrichtenUUID"
        )
    recipient = _text(_child(_child(header, "leser"), "kennung"))
    if recipient is None:
        raise MissingRoutingKey("nachrichtenkopf.g2g has no leser/kennung (the recipient)")
    return Header(
        message_uuid=uuid.lower(),
        message_type=_local(root.tag),
        author=_text(_child(_child(header, "autor"), "kennung")),
        recipient=recipient,
    )
