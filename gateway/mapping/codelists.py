"""Known code lists (genericode files), so that value maps can be checked for completeness.

Shipped lists live in ``schemas/codelists/*.xml``; operators add their own in
``<config dir>/codelists/*.xml``. A list is known by its ``CanonicalUri`` (the ``listURI``
of an XÖV ``Code``) and by its ``CanonicalVersionUri``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from gateway.errors import ConfigError

GC = "http://docs.oasis-open.org/codelist/ns/genericode/1.0/"


@dataclass(frozen=True)
class CodeList:
    uri: str
    version_uri: str | None
    codes: frozenset[str]
    source: str


class CodeLists:
    def __init__(self, lists: Iterable[CodeList]) -> None:
        self._by_uri: dict[str, CodeList] = {}
        for code_list in lists:
            self._by_uri[code_list.uri] = code_list
            if code_list.version_uri:
                self._by_uri[code_list.version_uri] = code_list

    def get(self, uri: str) -> CodeList | None:
        return self._by_uri.get(uri)

    @classmethod
    def load(cls, directories: Iterable[Path]) -> CodeLists:
        return cls(
            read_genericode(path)
            for directory in directories
            if directory.is_dir()
            for path in sorted(directory.glob("*.xml"))
        )


def read_genericode(path: Path) -> CodeList:
    """The codes of the list's key column (its first ``Key``, else the column ``code``)."""
    try:
        # Code lists are trusted operator files, but still never need the network or a DTD.
        root = etree.parse(str(path), etree.XMLParser(no_network=True, resolve_entities=False))
    except (OSError, etree.XMLSyntaxError) as exc:
        raise ConfigError(f"{path}: cannot read code list: {exc}") from None
    ns = {"gc": GC}
    uri = root.findtext("Identification/CanonicalUri", namespaces=ns)
    if not uri:
        raise ConfigError(f"{path}: not a genericode code list (no Identification/CanonicalUri)")
    key = root.xpath("string(ColumnSet/Key[1]/ColumnRef/@Ref)") or "code"
    values = root.xpath("SimpleCodeList/Row/Value[@ColumnRef=$key]/SimpleValue/text()", key=key)
    assert isinstance(values, list)
    return CodeList(
        uri=uri.strip(),
        version_uri=(root.findtext("Identification/CanonicalVersionUri") or "").strip() or None,
        codes=frozenset(str(v).strip() for v in values),
        source=str(path),
    )
