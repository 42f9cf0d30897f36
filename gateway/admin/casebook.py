"""Mapping tests beside the config: input messages and the output each destination expects.

Layout, in ``<config dir>/mapping-tests/``::

    anmeldung-nuertingen.xml                       a valid message (its recipient decides)
    anmeldung-nuertingen.bw-hundesteuer.txt        expected body for that destination

The extension follows the mapping's format: ``.json``, ``.xml`` or ``.txt`` (key/value).
Every routed destination with a mapping needs an expected file; ``update`` writes them.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from gateway.admin.preview import preview
from gateway.errors import GatewayError
from gateway.intake.registry import SchemaRegistry
from gateway.municipality import MunicipalityDirectory
from gateway.routing.config import GatewayConfig

CASES_DIR = "mapping-tests"
EXTENSIONS = {"json": "json", "xml": "xml", "keyvalue": "txt"}


@dataclass(frozen=True)
class CaseResult:
    case: Path
    destination: str | None
    ok: bool
    message: str
    diff: str = ""
    stale: bool = False
    """The test no longer matches a route: its message is routed nowhere, or an expected
    output names a destination that gets no mapped payload for it (``config check``)."""


def stale_cases(
    config_dir: Path,
    registry: SchemaRegistry,
    directory: MunicipalityDirectory,
    config: GatewayConfig,
) -> list[CaseResult]:
    """The mapping tests that no longer match a route (not those whose output differs:
    that is ``config test``'s job)."""
    return [r for r in run_cases(config_dir, registry, directory, config) if r.stale]


def run_cases(
    config_dir: Path,
    registry: SchemaRegistry,
    directory: MunicipalityDirectory,
    config: GatewayConfig,
    update: bool = False,
) -> list[CaseResult]:
    results: list[CaseResult] = []
    for case in sorted((config_dir / CASES_DIR).glob("*.xml")):
        if case.stem.count(".") and _is_expected(case, config):
            continue  # an expected XML output, not an input
        try:
            shown = preview(case.read_bytes(), registry, directory, config)
        except GatewayError as exc:
            results.append(
                CaseResult(case, None, False, f"cannot preview: {exc.detail}", stale=True)
            )
            continue
        seen: set[Path] = set()
        for d in shown.deliveries:
            if d.payload is None:
                continue
            expected_path = case.with_name(
                f"{case.stem}.{d.destination}.{EXTENSIONS[d.payload.format]}"
            )
            seen.add(expected_path)
            actual = d.payload.body.decode()
            results.append(_compare(case, d.destination, expected_path, actual, update))
        for stray in sorted(case.parent.glob(f"{case.stem}.*.*")):
            if stray not in seen:
                results.append(
                    CaseResult(
                        case,
                        stray.name.split(".")[-2],
                        False,
                        f"{stray.name}: expected output for a destination that gets no mapped "
                        "payload for this message (route or mapping changed?)",
                        stale=True,
                    )
                )
    return results


def _is_expected(path: Path, config: GatewayConfig) -> bool:
    return path.stem.rsplit(".", 1)[-1] in config.destinations


def _compare(
    case: Path, destination: str, expected_path: Path, actual: str, update: bool
) -> CaseResult:
    if not expected_path.exists():
        if update:
            expected_path.write_text(actual, encoding="utf-8")
            return CaseResult(case, destination, True, f"wrote {expected_path.name}")
        return CaseResult(
            case,
            destination,
            False,
            f"no expected output {expected_path.name} (run with --update)",
            stale=True,
        )
    expected = expected_path.read_text(encoding="utf-8")
    if expected == actual:
        return CaseResult(case, destination, True, "ok")
    if update:
        expected_path.write_text(actual, encoding="utf-8")
        return CaseResult(case, destination, True, f"updated {expected_path.name}")
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            fromfile=f"{expected_path} (expected)",
            tofile=f"{destination} (actual mapping output)",
        )
    )
    return CaseResult(case, destination, False, "output differs", diff)
