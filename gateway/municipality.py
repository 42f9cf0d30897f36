"""Municipality keys: the one place that knows AGS, ARS and the regional levels.

The AGS (Amtlicher Gemeindeschlüssel, 8 digits) names a municipality; its prefixes name the
Land (2), Regierungsbezirk (3) and Kreis (5). The ARS (Amtlicher Regionalschlüssel, 12
digits) adds the Gemeindeverband (digits 6-9) in the middle. Routes and mappings are
configured for a prefix and inherited along it; a recipient ``kennung`` (DVDV style,
``ags:…``, ``ars:…`` or a configured alias) resolves to an AGS of the official list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from lxml import etree
from pydantic import AfterValidator

from gateway.errors import ConfigError, UnknownRecipient
from gateway.settings import SHIPPED_MUNICIPALITY_LIST, Settings

AGS_DIGITS = 8
ARS_DIGITS = 12
LEVELS = {0: "default", 2: "Land", 3: "Regierungsbezirk", 5: "Kreis", 8: "municipality"}
"""Prefix length → regional level; ``""`` (configured as ``*``) means every municipality."""
AGS_LIST = "urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:ags"
"""CanonicalUri of Destatis' AGS code list (XRepository)."""


def codelist_file(uri: str) -> str:
    """The file name an imported code list is active under in ``<config>/codelists/``."""
    return "".join(c if c.isalnum() or c in "-." else "_" for c in uri) + ".xml"


def municipality_list(settings: Settings) -> Path:
    """The AGS list in effect: an explicitly set ``municipality_list``, else one imported
    into the configuration (``xoev-gateway codelists import``), else the shipped one."""
    if settings.municipality_list != SHIPPED_MUNICIPALITY_LIST:
        return settings.municipality_list
    imported = settings.config_source / "codelists" / codelist_file(AGS_LIST)
    return imported if imported.is_file() else SHIPPED_MUNICIPALITY_LIST


def level_of(prefix: str) -> str:
    return LEVELS[len(prefix)]


def prefixes(ags: str) -> tuple[str, str, str, str, str]:
    """The AGS and every prefix it inherits from, most specific first, ``""`` last."""
    return (ags, ags[:5], ags[:3], ags[:2], "")


def ars_to_ags(ars: str) -> str:
    """ARS (12 digits: Land, RB, Kreis, Verband, Gemeinde) to AGS (8 digits)."""
    return ars[:5] + ars[9:]


def municipality_prefix(value: str) -> str:
    """A configured municipality key as the AGS prefix it stands for ('' for '*')."""
    if value == "*":
        return ""
    if not value.isdigit() or (len(value) not in LEVELS and len(value) != ARS_DIGITS):
        raise ValueError(
            "must be '*' or a key of 2 (Land), 3 (Regierungsbezirk), 5 (Kreis), "
            "8 (AGS) or 12 (ARS) digits"
        )
    return ars_to_ags(value) if len(value) == ARS_DIGITS else value


MunicipalityPrefix = Annotated[str, AfterValidator(municipality_prefix)]
"""A configuration field holding a municipality key, normalised to its AGS prefix."""


class MunicipalityDirectory:
    """The official municipality keys (AGS), from the shipped derived code list."""

    def __init__(self, names: dict[str, str], source: str) -> None:
        self.names = names
        self.source = source

    @classmethod
    def load(cls, path: Path) -> MunicipalityDirectory:
        """The shipped derived list (``AGS<TAB>name`` lines) or Destatis' genericode file."""
        if path.suffix == ".xml":
            return cls._genericode(path)
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

    @classmethod
    def _genericode(cls, path: Path) -> MunicipalityDirectory:
        try:
            root = etree.parse(str(path), etree.XMLParser(no_network=True, resolve_entities=False))
        except (OSError, etree.XMLSyntaxError) as exc:
            raise ConfigError(f"{path}: cannot read the AGS list: {exc}") from None
        key = root.xpath("string(ColumnSet/Key[1]/ColumnRef/@Ref)") or "SCHLUESSEL"
        names: dict[str, str] = {}
        for row in root.iterfind("SimpleCodeList/Row"):
            values = {v.get("ColumnRef"): (v.findtext("SimpleValue") or "") for v in row}
            code = values.get(key, "").strip()
            if len(code) == AGS_DIGITS and code.isdigit():
                names[code] = values.get("Bezeichnung", "").strip()
        version = (root.findtext("Identification/CanonicalVersionUri") or "").strip()
        return cls(names, version or str(path))

    def __contains__(self, ags: str) -> bool:
        return ags in self.names

    def normalize(self, key: str) -> str:
        """An AGS or ARS typed by a person (CLI, preview) as an AGS of the list."""
        ags = ars_to_ags(key) if len(key) == ARS_DIGITS and key.isdigit() else key
        if ags not in self:
            raise UnknownRecipient(f"'{key}' is no municipality key (AGS) in {self.source}")
        return ags


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
        elif prefix.lower() == "ags" and len(key) == AGS_DIGITS and key.isdigit():
            ags = key
        elif prefix.lower() == "ars" and len(key) == ARS_DIGITS and key.isdigit():
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
