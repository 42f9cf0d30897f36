"""``xoev-gateway codelists import``: an XRepository genericode file into the configuration.

Where: ``<config dir>/codelists/``, beside the files that use it, so that a reload (SIGHUP,
admin reload) picks it up and the config version changes with it (its digest covers the
code lists). One file per list is active, named after its ``CanonicalUri``; every
imported version is kept under ``codelists/versions/``, named after its
``CanonicalVersionUri``. Destatis' AGS list becomes the gateway's municipality list.

Checked before anything is written: a genericode ``CodeList`` with identification
(``CanonicalUri``, ``CanonicalVersionUri``, ``Version``), a declared key column, a
non-empty and unique key in every row; and the configuration must still load with the new
list (value maps naming codes the list no longer has are refused: ``--force`` imports
anyway, and ``config check`` keeps reporting them). See docs/codelists.md.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from gateway.errors import CodeListRefused, ConfigError
from gateway.mapping.codelists import GC, CodeList, CodeLists, read_genericode
from gateway.municipality import AGS_DIGITS, AGS_LIST, codelist_file
from gateway.routing.config import load_config
from gateway.settings import SHIPPED_SCHEMAS


@dataclass(frozen=True)
class Imported:
    uri: str
    version: str
    version_uri: str
    codes: int
    active: Path
    archived: Path
    previous: str | None
    """The version it replaced (None: the first import of this list)."""
    problem: str | None = None
    """With ``force``: why the configuration refuses it (``config check`` says it too)."""


def check_genericode(path: Path) -> tuple[CodeList, str]:
    """The list and its ``Version``, or ``CodeListRefused`` naming the problem."""
    try:
        tree = etree.parse(str(path), etree.XMLParser(no_network=True, resolve_entities=False))
    except (OSError, etree.XMLSyntaxError) as exc:
        raise CodeListRefused(f"{path}: cannot read: {exc}") from None
    root = tree.getroot()
    if root.tag != f"{{{GC}}}CodeList":
        raise CodeListRefused(f"{path}: not a genericode CodeList (root {root.tag!s})")
    ident = root.find("Identification")
    fields = {
        name: (ident.findtext(name) or "").strip() if ident is not None else ""
        for name in ("CanonicalUri", "CanonicalVersionUri", "Version")
    }
    missing = [name for name, value in fields.items() if not value]
    if missing:
        raise CodeListRefused(f"{path}: Identification lacks {', '.join(missing)}")
    columns = {c.get("Id") for c in root.iterfind("ColumnSet/Column")}
    key = root.xpath("string(ColumnSet/Key[1]/ColumnRef/@Ref)") or "code"
    if key not in columns:
        raise CodeListRefused(f"{path}: key column '{key}' is not declared in ColumnSet")
    seen: set[str] = set()
    for number, row in enumerate(root.iterfind("SimpleCodeList/Row"), start=1):
        value = next(
            ((v.findtext("SimpleValue") or "").strip() for v in row if v.get("ColumnRef") == key),
            "",
        )
        if not value:
            raise CodeListRefused(f"{path}:{row.sourceline}: row {number} has no {key}")
        if value in seen:
            raise CodeListRefused(f"{path}:{row.sourceline}: {key} '{value}' appears twice")
        seen.add(value)
    if not seen:
        raise CodeListRefused(f"{path}: the list has no rows")
    if fields["CanonicalUri"] == AGS_LIST and not any(
        len(code) == AGS_DIGITS and code.isdigit() for code in seen
    ):
        raise CodeListRefused(f"{path}: an AGS list without 8-digit keys")
    return read_genericode(path), fields["Version"]


def import_codelist(path: Path, config_dir: Path, *, force: bool = False) -> Imported:
    code_list, version = check_genericode(path)
    assert code_list.version_uri is not None  # checked above
    directory = config_dir / "codelists"
    active = directory / codelist_file(code_list.uri)
    archived = directory / "versions" / codelist_file(code_list.version_uri)
    previous = read_genericode(active).version_uri if active.is_file() else None
    problem = _config_problem(config_dir, code_list, active)
    if problem is not None and not force:
        raise CodeListRefused(
            f"the configuration would be refused with {code_list.version_uri}: {problem} "
            "(fix the mapping first, or import with --force)"
        )
    archived.parent.mkdir(parents=True, exist_ok=True)
    _copy(path, archived)
    _copy(path, active)
    return Imported(
        code_list.uri,
        version,
        code_list.version_uri,
        len(code_list.codes),
        active,
        archived,
        previous,
        problem,
    )


def _config_problem(config_dir: Path, new: CodeList, active: Path) -> str | None:
    others = [
        read_genericode(p)
        for d in (SHIPPED_SCHEMAS / "codelists", config_dir / "codelists")
        if d.is_dir()
        for p in sorted(d.glob("*.xml"))
        if p.resolve() != active.resolve()
    ]
    try:
        load_config(config_dir, CodeLists([*others, new]))
    except ConfigError as exc:
        return exc.detail
    return None


def _copy(source: Path, target: Path) -> None:
    # Temp file + rename: a reload in between sees the old list or the new one, whole.
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)
