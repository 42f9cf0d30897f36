"""A configuration for every municipality, for the config-scale benchmark and its test.

A Land default mapping for the sample service, and per AGS of the key list a destination,
a route and a mapping override (one file per Kreis): the shape a Rechenzentrum serving
all municipalities has. Written as YAML or as JSON (which the loader also reads).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml

SERVICE = "hundesteuer.anmeldung.0101"
HS = "https://xoev-gateway.de/schemata/hundesteuer/1_0"
XGB = "https://xoev-gateway.de/schemata/basis/1_0"


def municipality_keys(ags_list: Path) -> list[str]:
    with ags_list.open(encoding="utf-8") as fh:
        return [line.split("\t", 1)[0] for line in fh if line[:1].isdigit()]


def _base(lands: list[str]) -> dict[str, Any]:
    return {
        "namespaces": {"hs": HS, "xgb": XGB},
        "destinations": {
            f"land-{land}": {"adapter": "filedrop", "settings": {"directory": f"out/{land}"}}
            for land in lands
        },
        "routes": [
            {"municipality": land, "service": SERVICE, "destinations": [f"land-{land}"]}
            for land in lands
        ],
        "mappings": [
            {
                "service": SERVICE,
                "municipality": "*",
                "fields": {
                    "hund": "hs:hund/hs:name",
                    "name": "hs:halter/hs:person/xgb:familienname",
                    "iban": "hs:zahlungsweise/hs:sepaLastschrift/hs:bankverbindung/xgb:iban",
                    "geschlecht": {
                        "xpath": "hs:hund/hs:geschlecht/code",
                        "map": {"values": {"m": "M", "w": "W", "mk": "MK", "wk": "WK"}},
                    },
                },
            }
        ],
    }


def _kreis(members: list[str]) -> dict[str, Any]:
    return {
        "destinations": {
            f"m-{k}": {"adapter": "filedrop", "settings": {"directory": f"out/{k}"}}
            for k in members
        },
        "routes": [
            {"municipality": k, "service": SERVICE, "destinations": [f"m-{k}"]} for k in members
        ],
        "mappings": [
            {
                "service": SERVICE,
                "municipality": k,
                "fields": {"gemeinde": {"const": k}, "iban": None},
            }
            for k in members
        ],
    }


def write_scale_config(
    directory: Path, keys: list[str], fmt: Literal["yaml", "json"] = "yaml"
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    files = {"base": _base(sorted({k[:2] for k in keys}))}
    by_kreis: dict[str, list[str]] = {}
    for k in keys:
        by_kreis.setdefault(k[:5], []).append(k)
    files.update({f"kreis-{kreis}": _kreis(members) for kreis, members in by_kreis.items()})
    for name, content in files.items():
        if fmt == "json":
            text = json.dumps(content, indent=1)
        else:
            text = yaml.dump(content, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper))
        (directory / f"{name}.{fmt}").write_text(text, encoding="utf-8")
