from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.routing.access import Admin, Sender
from gateway.routing.config import load_config
from tests.support.gateway_process import REPO

TOKEN = "k3V9-a-long-random-token-for-the-tests-only"
TOKEN_HASH = hashlib.sha256(TOKEN.encode()).hexdigest()
GRANTS = "services: ['*'], regions: ['*']"
BLOCK = "    services: ['*']\n    regions: ['*']\n"


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
    write(tmp_path, "s.yaml", f"senders:\n  portal: {{token_sha256: '{TOKEN_HASH}', {GRANTS}}}\n")
    cfg = load_config(tmp_path)
    sender = cfg.authenticate(TOKEN)
    assert isinstance(sender, Sender) and sender.name == "portal"
    assert cfg.authenticate("wrong") is None


def test_admins_have_their_own_section(tmp_path: Path) -> None:
    admin_hash = hashlib.sha256(b"another-long-random-token-for-an-admin").hexdigest()
    write(
        tmp_path,
        "s.yaml",
        f"senders:\n  portal: {{token_sha256: '{TOKEN_HASH}', {GRANTS}}}\n"
        f"admins:\n  ops: {{token_sha256: '{admin_hash}'}}\n",
    )
    cfg = load_config(tmp_path)
    assert cfg.authenticate("another-long-random-token-for-an-admin") == Admin("ops")
    assert cfg.demo_credentials == []


def test_the_example_configuration_names_its_demo_credentials() -> None:
    cfg = load_config(REPO / "deploy" / "config")
    assert cfg.demo_credentials == ["admins.admin", "senders.efa-portal"]


WEAK = hashlib.sha256(b"changeme").hexdigest()
SHORT = hashlib.sha256(b"x7q").hexdigest()
OWN_NAME = hashlib.sha256(b"portal-token").hexdigest()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"senders:\n  p:\n    token_sha256: '{TOKEN_HASH}'\n    role: admin\n{BLOCK}",
            r"s.yaml:4: senders\.p\.role: unknown key: admins are not senders; move an admin "
            r"to the 'admins:' section",
        ),
        (
            f"senders:\n  p:\n    token_sha256: '{TOKEN_HASH}'\n    regions: ['08']\n"
            "    service: [x]\n",
            r"s.yaml:2: senders\.p\.services: Field required; .*s.yaml:5: senders\.p\.service: "
            r"unknown key",
        ),
        (
            f"senders:\n  p:\n    token_sha256: '{TOKEN_HASH}'\n    services: []\n"
            "    regions: ['*']\n",
            r"s.yaml:4: senders\.p\.services: List should have at least 1 item",
        ),
        (
            f"senders:\n  p:\n    token_sha256: '{TOKEN_HASH}'\n    services: ['*']\n"
            "    regions: ['0811']\n",
            r"s.yaml:5: senders\.p\.regions\.0: Value error, must be '\*' or a key",
        ),
        (
            f"admins:\n  ops: {{token_sha256: '{TOKEN_HASH}', extra: 1}}\n",
            r"s.yaml:2: admins\.ops\.extra: unknown key",
        ),
        (
            f"senders:\n  p: {{token_sha256: '{TOKEN_HASH}', {GRANTS}}}\n"
            f"admins:\n  ops:\n    token_sha256: '{TOKEN_HASH}'\n",
            r"s.yaml:5: admins\.ops\.token_sha256: the same token as senders\.p",
        ),
        (
            f"senders:\n  p:\n{BLOCK}    token_sha256: '{WEAK}'\n",
            r"s.yaml:5: senders\.p\.token_sha256: the hash of a well-known token",
        ),
        (
            f"admins:\n  ops: {{token_sha256: '{SHORT}'}}\n",
            r"s.yaml:2: admins\.ops\.token_sha256: the hash of a short token",
        ),
        (
            f"senders:\n  portal: {{token_sha256: '{OWN_NAME}', {GRANTS}}}\n",
            r"senders\.portal\.token_sha256: the hash of a token made of its own name",
        ),
    ],
)
def test_access_errors_name_file_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    write(tmp_path, "s.yaml", text)
    with pytest.raises(ConfigError, match=expected):
        load_config(tmp_path)


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
