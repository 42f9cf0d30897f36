from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.routing.config import load_config

TOKEN_HASH = hashlib.sha256(b"t").hexdigest()


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


BASE = """
destinations:
  land: {adapter: filedrop, settings: {directory: out/land}}
  kreis: {adapter: filedrop, settings: {directory: out/kreis}}
  gemeinde: {adapter: filedrop, settings: {directory: out/gemeinde}}
  archiv: {adapter: filedrop, settings: {directory: out/archiv}}
  leika: {adapter: filedrop, settings: {directory: out/leika}}
routes:
  - {municipality: "08", service: hund, destinations: [land]}
  - {municipality: "08116", service: hund, destinations: [kreis]}
  - {municipality: "08116049", service: hund, destinations: [gemeinde, archiv]}
  - {municipality: "*", service: "*", destinations: [archiv]}
  - {municipality: "081160049049", service: "99108008001000", destinations: [leika]}
"""


def test_most_specific_prefix_wins(tmp_path: Path) -> None:
    write(tmp_path, "routes.yaml", BASE)
    cfg = load_config(tmp_path)
    assert cfg.resolve("08116049", ("hund",)) == ("gemeinde", "archiv")
    assert cfg.resolve("08116019", ("hund",)) == ("kreis",)
    assert cfg.resolve("08111000", ("hund",)) == ("land",)
    assert cfg.resolve("09162000", ("hund",)) == ("archiv",)
    assert cfg.resolve("08111000", ("katze",)) == ("archiv",)


def test_ars_is_taken_as_its_municipality_and_leika_routes(tmp_path: Path) -> None:
    write(tmp_path, "routes.yaml", BASE)
    cfg = load_config(tmp_path)
    # ARS 08116 0049 049 is AGS 08116049; the LeiKa key is a second service key.
    assert cfg.resolve("08116049", ("other", "99108008001000")) == ("leika",)


def test_relative_directories_are_relative_to_the_file(tmp_path: Path) -> None:
    write(tmp_path, "routes.yaml", BASE)
    cfg = load_config(tmp_path)
    assert cfg.destinations["land"].settings.directory == tmp_path / "out" / "land"  # type: ignore[attr-defined]


def test_tokens_are_compared_hashed(tmp_path: Path) -> None:
    write(tmp_path, "s.yaml", f"senders:\n  portal: {{token_sha256: '{TOKEN_HASH}'}}\n")
    cfg = load_config(tmp_path)
    sender = cfg.authenticate("t")
    assert sender is not None and sender.name == "portal" and sender.role == "sender"
    assert cfg.authenticate("wrong") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "destinations:\n  a:\n    adapter: filedrop\n    settings:\n      directory: x\n      colour: red\n",
            r"routes.yaml:6: destinations\.a\.settings\.colour: unknown key",
        ),
        (
            "destinations:\n  a: {adapter: nosuch}\n",
            r"routes.yaml:2: destinations\.a\.adapter: unknown adapter 'nosuch' \(installed: .*filedrop",
        ),
        (
            "routes:\n  - {municipality: '0811', destinations: [a]}\n",
            r"routes.yaml:2: routes\.0\.municipality: Value error, must be",
        ),
        (
            "destinations:\n  a: {adapter: filedrop, settings: {directory: x}}\nroutes:\n"
            "  - {municipality: '08', destinations: [a]}\n  - {municipality: '08', destinations: [b]}\n",
            r"routes.yaml:5: routes\.1: municipality '08' and service '\*' are already routed",
        ),
        (
            "destinations:\n  a: {adapter: filedrop, settings: {directory: x}}\nroutes:\n"
            "  - {municipality: '08', destinations: [a, zz]}\n",
            r"routes.yaml:4: routes\.0\.destinations\.1: unknown destination 'zz'",
        ),
        ("routes: [\n  {municipality: '08'\n", r"routes.yaml:3: invalid YAML"),
        (
            "senders:\n  p: {token_sha256: plain-secret}\n",
            r"routes.yaml:2: senders\.p\.token_sha256",
        ),
    ],
)
def test_config_errors_name_file_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    write(tmp_path, "routes.yaml", text)
    with pytest.raises(ConfigError, match=expected):
        load_config(tmp_path)


def test_names_must_be_unique_across_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "destinations:\n  d: {adapter: filedrop, settings: {directory: x}}\n")
    write(tmp_path, "b.yaml", "destinations:\n  d: {adapter: filedrop, settings: {directory: y}}\n")
    with pytest.raises(ConfigError, match=r"b.yaml: destinations\.d: already defined in .*a.yaml"):
        load_config(tmp_path)


def test_shipped_example_config_loads() -> None:
    cfg = load_config(Path(__file__).parents[2] / "deploy" / "config")
    assert cfg.resolve("08111000", ("hundesteuer.anmeldung.0101",)) == ("stuttgart-steueramt",)
    assert cfg.resolve("05315000", ("bewohnerparken.antrag.0201",)) == (
        "koeln-steuer",
        "koeln-archiv",
    )
