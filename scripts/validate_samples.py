"""Validate the shipped sample messages against their schema sets (developer check).

Reads schemas/catalog.yaml, compiles each schema set with lxml while mapping the catalog's
absolute schemaLocation URLs to local files (nothing is ever fetched), and validates
schemas/samples/<service>/valid/*.xml (must pass) and .../invalid/*.xml (must fail, except
files named unknown-recipient.xml, which are schema-valid by design).

Usage: python scripts/validate_samples.py [path/to/catalog.yaml]
Exit status 0 when every sample behaves as expected.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import yaml
from lxml import etree

REPO = Path(__file__).resolve().parent.parent
SCHEMA_VALID_BY_DESIGN = {"unknown-recipient.xml"}


class CatalogResolver(etree.Resolver):
    """Resolve absolute schema URLs through the catalog; refuse every other remote URL."""

    def __init__(self, urls: dict[str, Path]) -> None:
        super().__init__()
        self._urls = urls

    def resolve(self, system_url: str, public_id: str, context: Any = None) -> Any:
        local = self._urls.get(system_url)
        if local is not None:
            # resolve_file + base_url keeps relative includes of the local file working
            return self.resolve_file(
                local.open("rb"), context, base_url=local.resolve().as_uri(), close=True
            )
        if system_url.startswith(("http://", "https://")):
            raise LookupError(f"schema URL not in catalog: {system_url}")
        return None


def load_schema(xsd: Path, urls: dict[str, Path]) -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    parser.resolvers.add(CatalogResolver(urls))
    return etree.XMLSchema(etree.parse(str(xsd), parser))


def parse_instance(path: Path) -> etree._ElementTree:
    parser = etree.XMLParser(
        no_network=True, resolve_entities=False, load_dtd=False, dtd_validation=False
    )
    return etree.parse(str(path), parser)


def error_lines(log: object) -> list[str]:
    """Format an lxml error log (the lxml stubs do not declare it iterable)."""
    return [f"line {e.line}: {e.message}" for e in cast(Iterable[Any], log)]


def main(argv: list[str]) -> int:
    catalog_path = Path(argv[1]) if len(argv) > 1 else REPO / "schemas" / "catalog.yaml"
    base = catalog_path.parent
    catalog: dict[str, Any] = yaml.safe_load(catalog_path.read_text(encoding="utf-8"))
    urls = {str(url): base / str(rel) for url, rel in catalog.get("urls", {}).items()}
    failures = 0
    for entry in catalog["schema_sets"]:
        xsd = base / str(entry["schema"])
        schema = load_schema(xsd, urls)
        service = xsd.parent.name
        samples = base / "samples" / service
        for path in sorted((samples / "valid").glob("*.xml")):
            ok = schema.validate(parse_instance(path))
            print(f"{'ok  ' if ok else 'FAIL'} valid   {path.relative_to(base)}")
            if not ok:
                failures += 1
                for line in error_lines(schema.error_log):
                    print(f"       {line}")
        for path in sorted((samples / "invalid").glob("*.xml")):
            ok = schema.validate(parse_instance(path))
            expected = path.name in SCHEMA_VALID_BY_DESIGN
            good = ok == expected
            print(f"{'ok  ' if good else 'FAIL'} invalid {path.relative_to(base)}")
            for line in error_lines(schema.error_log):
                print(f"       {line}")
            if not good:
                failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
