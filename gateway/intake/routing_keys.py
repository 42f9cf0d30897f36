"""Routing keys from the Nachrichtenkopf: who sent what to which municipality."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from lxml import etree
from pydantic import AfterValidator

from gateway.errors import MissingRoutingKey, UnknownRecipient


@dataclass(frozen=True)
class RoutingKeys:
    message_uuid: str
    message_type: str
    author: str | None
    recipient: str
    municipality: str
    leika: str | None


class MunicipalityDirectory:
    """The official municipality keys (AGS), from the shipped derived code list."""

    def __init__(self, names: dict[str, str], source: str) -> None:
        self.names = names
        self.source = source

    @classmethod
    def load(cls, path: Path) -> MunicipalityDirectory:
        names: dict[str, str] = {}
        source = str(path)
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("#"):
                    if line.startswith("# source:"):
                        source = line.split(":", 1)[1].strip()
                    continue
                key, _, name = line.rstrip("\n").partition("\t")
                if key:
                    names[key] = name
        return cls(names, source)

    def __contains__(self, ags: str) -> bool:
        return ags in self.names


def ars_to_ags(ars: str) -> str:
    """ARS (12 digits: Land, RB, Kreis, Verband, Gemeinde) to AGS (8 digits)."""
    return ars[:5] + ars[9:]


def municipality_prefix(value: str) -> str:
    """A configured municipality key as the AGS prefix it stands for ('' for '*')."""
    if value == "*":
        return ""
    if not value.isdigit() or len(value) not in (2, 3, 5, 8, 12):
        raise ValueError(
            "must be '*' or a key of 2 (Land), 3 (Regierungsbezirk), 5 (Kreis), "
            "8 (AGS) or 12 (ARS) digits"
        )
    return ars_to_ags(value) if len(value) == 12 else value


MunicipalityPrefix = Annotated[str, AfterValidator(municipality_prefix)]


class RecipientResolver:
    """Turns ``leser/kennung`` (``ags:…``, ``ars:…`` or a configured DVDV kennung) into an AGS."""

    def __init__(self, directory: MunicipalityDirectory, aliases: dict[str, str]) -> None:
        self.directory = directory
        self.aliases = aliases

    def resolve(self, kennung: str) -> str:
        alias = self.aliases.get(kennung)
        prefix, _, key = kennung.partition(":")
        if alias is not None:
            ags = alias
        elif prefix.lower() == "ags" and len(key) == 8 and key.isdigit():
            ags = key
        elif prefix.lower() == "ars" and len(key) == 12 and key.isdigit():
            ags = ars_to_ags(key)
        else:
            raise UnknownRecipient(
                f"recipient kennung '{kennung}' is neither ags:<8 digits>, ars:<12 digits> "
                "nor a configured recipient alias"
            )
        if ags not in self.directory:
            raise UnknownRecipient(
                f"recipient '{kennung}' (AGS {ags}) is not in the municipality key list "
                f"{self.directory.source}"
            )
        return ags


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
