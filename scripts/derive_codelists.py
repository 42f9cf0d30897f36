"""Derive the municipality key list schemas/codelists/ags.tsv from the genericode AGS list.

The XRepository publishes the Amtlicher Gemeindeschlüssel (AGS) as a genericode code list
(urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:ags). The gateway only needs
key -> name, so this script streams the (large) genericode file with lxml iterparse and
writes a small TSV:

    # source: <CanonicalVersionUri>
    <SCHLUESSEL>\t<Bezeichnung>
    ...

rows sorted by key. The genericode file is trusted input, but it is still parsed without
network access or entity expansion.

Usage:
    python scripts/derive_codelists.py [GENERICODE_XML] [-o OUTPUT_TSV]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from lxml import etree

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = (
    REPO.parent
    / "shared"
    / "xoev"
    / "codelists"
    / "urn_de_bund_destatis_bevoelkerungsstatistik_schluessel_ags_2026-06-30.xml"
)
DEFAULT_OUTPUT = REPO / "schemas" / "codelists" / "ags.tsv"
KEY_COLUMN = "SCHLUESSEL"
NAME_COLUMN = "Bezeichnung"


class CodeListError(Exception):
    """The genericode file does not have the expected shape."""


def _local(tag: object) -> str:
    """Local name of an element tag ('{ns}Row' -> 'Row'); '' for comments/PIs."""
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def _clean(text: str | None) -> str:
    """Collapse whitespace so a value can never break the TSV format."""
    return " ".join((text or "").split())


def _row_values(row: etree._Element) -> dict[str, str]:
    values: dict[str, str] = {}
    for value in row:
        if _local(value.tag) != "Value":
            continue
        column = value.get("ColumnRef")
        if column is None:
            continue
        simple = next((c for c in value if _local(c.tag) == "SimpleValue"), None)
        values[column] = _clean(simple.text if simple is not None else None)
    return values


def read_genericode(
    source: Path, key_column: str = KEY_COLUMN, name_column: str = NAME_COLUMN
) -> tuple[str, list[tuple[str, str]]]:
    """Return (CanonicalVersionUri, [(key, name), ...]) from a genericode code list."""
    version_uri = ""
    rows: list[tuple[str, str]] = []
    events: Iterator[tuple[str, etree._Element]] = etree.iterparse(
        str(source),
        events=("end",),
        no_network=True,
        resolve_entities=False,
        load_dtd=False,
        huge_tree=False,
    )
    for _event, elem in events:
        name = _local(elem.tag)
        if name == "CanonicalVersionUri":
            parent = elem.getparent()
            if parent is not None and _local(parent.tag) == "Identification":
                version_uri = _clean(elem.text)
        elif name == "Row":
            values = _row_values(elem)
            key = values.get(key_column, "")
            if not key:
                raise CodeListError(f"row without {key_column} in {source}")
            rows.append((key, values.get(name_column, "")))
            # free memory: drop the processed row and its already-seen siblings
            elem.clear()
            parent = elem.getparent()
            if parent is not None:
                while elem.getprevious() is not None:
                    del parent[0]
    if not version_uri:
        raise CodeListError(f"no Identification/CanonicalVersionUri in {source}")
    if not rows:
        raise CodeListError(f"no code list rows in {source}")
    keys = [key for key, _ in rows]
    if len(set(keys)) != len(keys):
        raise CodeListError(f"duplicate {key_column} values in {source}")
    return version_uri, sorted(rows)


def write_tsv(output: Path, version_uri: str, rows: list[tuple[str, str]]) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# source: {version_uri}"]
    lines.extend(f"{key}\t{name}" for key, name in rows)
    output.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "source",
        nargs="?",
        type=Path,
        default=DEFAULT_SOURCE,
        help="genericode AGS code list (default: %(default)s)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="TSV file to write (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    source: Path = args.source
    output: Path = args.output
    try:
        version_uri, rows = read_genericode(source)
    except (OSError, etree.XMLSyntaxError, CodeListError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    write_tsv(output, version_uri, rows)
    print(f"wrote {len(rows)} rows from {version_uri} to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
