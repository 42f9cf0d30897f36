"""Configuration files (YAML), validated by pydantic, merged from a directory.

A configuration directory holds any number of ``*.yaml`` files, each with any of these
sections; names must be unique across files::

    senders:            # who may submit what for whom; tokens as SHA-256, never in clear
      efa-hundesteuer:
        token_sha256: "<hex>"              # xoev-gateway token new
        services: [hundesteuer.anmeldung.0101, "99108011000000"]   # message types, LeiKa, *
        regions: ["08", "09162000"]        # AGS/ARS prefixes, or "*"
        authors: ["efa:hundesteuer-online"]  # optional: the autor/kennung it may use
      efa-fundsachen:
        {token_sha256: "<hex>", services: ["*"], regions: ["08111"],
         default_recipient: "ags:08111000"}  # for its messages that name no recipient
      "fit-connect:<destinationId>": {services: ["*"], regions: ["09162"]}  # no token:
                                           # an identity a source authenticates itself
    admins:             # admin endpoints and audit; admins cannot submit
      ops: {token_sha256: "<hex>"}
    recipients:         # other DVDV kennungen resolved to a municipality (AGS)
      "psw:01234567": "08116049"
    destinations:       # where deliveries go: an adapter and its validated settings
      stuttgart-kasse:
        adapter: filedrop
        settings: {directory: out/stuttgart}
        max_attempts: 10
    routes:             # municipality prefix (Land 2, RB 3, Kreis 5, AGS 8 or ARS 12) + service
      - {municipality: "08", service: hundesteuer.anmeldung.0101, destinations: [bw-kasse]}
    namespaces:         # XPath prefixes for the mappings, declared once
      hs: https://xoev-gateway.de/schemata/hundesteuer/1_0
    mappings:           # what each destination receives; see gateway/mapping and docs/mapping.md
      - {service: hundesteuer.anmeldung.0101, municipality: "08", fields: {name: hs:hund/hs:name}}
    retention: …  limits: …  client_certificates: …   # see gateway/routing/policies.py

Relative paths in adapter settings are taken relative to the file that names them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.adapter_registry import AdapterClass, load_adapter_class
from gateway.errors import ConfigError
from gateway.mapping.codelists import CodeLists
from gateway.mapping.model import MappingConfig, allow_xpath_shorthand
from gateway.mapping.table import MappingSource, MappingSourceError, MappingTable, build_table
from gateway.municipality import MunicipalityPrefix, prefixes
from gateway.routing.access import Admin, Principal, Sender
from gateway.routing.policies import LimitsConfig, RetentionConfig, certificate_key
from gateway.routing.tokens import DEMO_HASHES, weakness
from gateway.routing.yaml_lines import line_of
from gateway.sdk import AdapterSettings
from gateway.settings import SHIPPED_SCHEMAS

_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Files of the same directory that their own part loads and validates (the inbound sources,
# gateway/sources); they are not routing files, but they count toward the config version.
SOURCE_FILES = frozenset({"fit-connect.yaml"})


TokenHash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class SenderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token_sha256: TokenHash | None = None
    """None: the sender cannot use the HTTP API; it is an identity a source authenticates
    itself (e.g. ``fit-connect:<destinationId>``), which needs grants all the same."""
    services: list[str] = Field(min_length=1)
    """Message types or LeiKa keys it may send; ``*`` for any."""
    regions: list[MunicipalityPrefix] = Field(min_length=1)
    """AGS prefixes (Land 2, Regierungsbezirk 3, Kreis 5, Gemeinde 8) or ARS (12); ``*``."""
    authors: list[str] | None = Field(default=None, min_length=1)
    """The ``autor/kennung`` values it may use; not restricted when absent."""
    default_recipient: str | None = Field(default=None, pattern=r"^[^:\s]+:\S+$")
    """A kennung (``ags:…``) for this sender's messages that name no recipient."""


class AdminConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token_sha256: TokenHash


class DestinationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    adapter: str
    settings: dict[str, Any] = {}
    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff_base_seconds: float = Field(default=2.0, gt=0)
    backoff_max_seconds: float = Field(default=3600.0, gt=0)
    timeout_seconds: float = Field(default=60.0, gt=0)


class RouteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    municipality: MunicipalityPrefix
    service: str = "*"
    destinations: list[str] = Field(min_length=1)


class ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    senders: dict[str, SenderConfig] = {}
    admins: dict[str, AdminConfig] = {}
    recipients: dict[str, str] = {}
    destinations: dict[str, DestinationConfig] = {}
    routes: list[RouteConfig] = []
    namespaces: dict[str, str] = {}
    mappings: list[MappingConfig] = []
    retention: RetentionConfig | None = None
    limits: LimitsConfig | None = None
    client_certificates: dict[str, str] = {}


class Destination(BaseModel):
    """A destination with its adapter class resolved and settings validated."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    name: str
    adapter: str
    adapter_class: Any
    settings: AdapterSettings
    max_attempts: int
    backoff_base_seconds: float
    backoff_max_seconds: float
    timeout_seconds: float
    source: str


class GatewayConfig:
    """The validated, merged configuration; immutable once built."""

    def __init__(
        self,
        senders: dict[str, tuple[str, SenderConfig]],
        recipients: dict[str, str],
        destinations: dict[str, Destination],
        routes: dict[tuple[str, str], tuple[str, ...]],
        version: str,
        mappings: MappingTable | None = None,
        route_sources: dict[tuple[str, str], str] | None = None,
        admins: dict[str, tuple[str, AdminConfig]] | None = None,
        *,
        retention: RetentionConfig | None = None,
        limits: LimitsConfig | None = None,
        client_certificates: dict[str, str] | None = None,
    ) -> None:
        admins = admins or {}
        self.senders = {
            name: Sender(
                name=name,
                services=frozenset(cfg.services),
                regions=frozenset(cfg.regions),
                authors=frozenset(cfg.authors) if cfg.authors is not None else None,
            )
            for name, (_, cfg) in senders.items()
        }
        self.admins = {name: Admin(name) for name in admins}
        # One table for both: a request costs one hash and one lookup whoever asks; the
        # loader refuses a hash used twice, so a token is a sender's or an admin's.
        self._by_token: dict[str, Principal] = {
            cfg.token_sha256: self.senders[name]
            for name, (_, cfg) in senders.items()
            if cfg.token_sha256 is not None
        }
        self._by_token.update(
            {cfg.token_sha256: self.admins[name] for name, (_, cfg) in admins.items()}
        )
        self.demo_credentials = sorted(
            f"{section}.{name}"
            for section, table in (("senders", senders), ("admins", admins))
            for name, (_, cfg) in table.items()
            if cfg.token_sha256 in DEMO_HASHES
        )
        """``senders.<name>``/``admins.<name>`` entries that use a public demo token."""
        self.retention = retention or RetentionConfig()
        self.limits = limits or LimitsConfig()
        self._by_certificate = {
            certificate_key(key): name for key, name in (client_certificates or {}).items()
        }
        self.sender_names = sorted(senders)
        self.default_recipients = {
            name: cfg.default_recipient
            for name, (_, cfg) in senders.items()
            if cfg.default_recipient is not None
        }
        self.recipients = recipients
        self.destinations = destinations
        self.routes = routes
        self.version = version
        self.mappings = mappings if mappings is not None else MappingTable({})
        self.route_sources = route_sources or {}

    def authenticate(self, token: str) -> Principal | None:
        return self._by_token.get(hashlib.sha256(token.encode()).hexdigest())

    def certificate_sender(self, fingerprint: str, subject: str | None) -> Sender | None:
        """The sender a verified client certificate stands for (``client_certificates``),
        by SHA-256 fingerprint first, then by subject."""
        name = self._by_certificate.get(certificate_key(fingerprint))
        if name is None and subject is not None:
            name = self._by_certificate.get(certificate_key(subject))
        return self.senders.get(name) if name is not None else None

    def resolve(self, municipality: str, services: tuple[str, ...]) -> tuple[str, ...]:
        """Destinations for an AGS and the message's service keys; most specific prefix wins.

        ``services`` is tried in order (message type, then LeiKa key), then ``*``. Lookups are
        dictionary hits on the AGS prefixes 8, 5, 3, 2 and the wildcard: O(1) whatever the
        number of municipalities configured.
        """
        key = self.route_key(municipality, services)
        return self.routes[key] if key is not None else ()

    def route_key(self, municipality: str, services: tuple[str, ...]) -> tuple[str, str] | None:
        """The (prefix, service) of the route that ``resolve`` takes, for explanations."""
        for prefix in prefixes(municipality):
            for service in (*services, "*"):
                if (prefix, service) in self.routes:
                    return (prefix, service)
        return None


def config_json_schema() -> dict[str, Any]:
    """JSON Schema of one configuration file, for editors (``xoev-gateway config schema``)."""
    schema: dict[str, Any] = allow_xpath_shorthand(ConfigFile.model_json_schema())
    schema["title"] = "xoev-gateway configuration file"
    return schema


def load_config(directory: Path, codelists: CodeLists | None = None) -> GatewayConfig:
    """Load and check every ``*.yaml`` in ``directory``.

    Value maps are checked against ``codelists`` (default: the shipped ones and the
    config's own ``codelists/`` directory). Raises ``ConfigError`` naming file, line, key
    and cause of the first problem.
    """
    if not directory.is_dir():
        raise ConfigError(f"{directory}: configuration directory does not exist")
    files = sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml"))
    # Generated configs (e.g. for thousands of municipalities) may be JSON: same schema,
    # parsed ~50x faster than YAML.
    files += sorted(p for p in directory.glob("*.json") if not p.name.endswith(".schema.json"))
    others = [p for p in files if p.name in SOURCE_FILES]
    files = [p for p in files if p.name not in SOURCE_FILES]
    if not files:
        raise ConfigError(f"{directory}: no *.yaml configuration files")
    senders: dict[str, tuple[str, SenderConfig]] = {}
    admins: dict[str, tuple[str, AdminConfig]] = {}
    token_owners: dict[str, str] = {}
    recipients: dict[str, str] = {}
    destinations: dict[str, Destination] = {}
    route_src: dict[tuple[str, str], tuple[str, RouteConfig]] = {}
    route_refs: list[tuple[Path, str, int, RouteConfig]] = []
    digest = hashlib.sha256()
    adapter_cache: dict[str, AdapterClass] = {}
    namespaces: dict[str, tuple[str, Path]] = {}
    mapping_sources: list[MappingSource] = []
    policies: dict[str, tuple[Path, Any]] = {}
    client_certificates: dict[str, tuple[Path, str, str]] = {}
    for path in files:
        text = path.read_text(encoding="utf-8")
        digest.update(path.name.encode() + b"\0" + text.encode())
        parsed = _parse(path, text)
        for name, sender in parsed.senders.items():
            _unique(senders, name, path, "senders")
            senders[name] = (str(path), sender)
            if sender.token_sha256 is not None:
                _check_token(path, text, "senders", name, sender.token_sha256, token_owners)
        for name, admin in parsed.admins.items():
            _unique(admins, name, path, "admins")
            admins[name] = (str(path), admin)
            _check_token(path, text, "admins", name, admin.token_sha256, token_owners)
        for kennung, ags in parsed.recipients.items():
            recipients[kennung] = ags
        for name, dest in parsed.destinations.items():
            _unique(destinations, name, path, "destinations")
            destinations[name] = _destination(path, text, name, dest, adapter_cache)
        for index, route in enumerate(parsed.routes):
            key = (route.municipality, route.service)
            if key in route_src:
                first = route_src[key][0]
                raise ConfigError(
                    f"{_where(path, text, ('routes', index))}: routes.{index}: municipality "
                    f"'{route.municipality or '*'}' and service '{route.service}' are already "
                    f"routed in {first}"
                )
            route_src[key] = (str(path), route)
            route_refs.append((path, text, index, route))
        for prefix, uri in parsed.namespaces.items():
            if prefix in namespaces and namespaces[prefix][0] != uri:
                raise ConfigError(
                    f"{_where(path, text, ('namespaces', prefix))}: namespaces.{prefix}: "
                    f"already declared as '{namespaces[prefix][0]}' in {namespaces[prefix][1]}"
                )
            namespaces[prefix] = (uri, path)
        mapping_sources.extend(
            MappingSource(path, text, index, entry) for index, entry in enumerate(parsed.mappings)
        )
        for section in ("retention", "limits"):
            value = getattr(parsed, section)
            if value is not None:
                if section in policies:
                    raise ConfigError(
                        f"{_where(path, text, (section,))}: {section}: already configured in "
                        f"{policies[section][0]} (one file holds this section)"
                    )
                policies[section] = (path, value)
        for cert_key, sender_name in parsed.client_certificates.items():
            client_certificates[cert_key] = (path, text, sender_name)
    for path, text, index, route in route_refs:
        for d_index, dest_name in enumerate(route.destinations):
            if dest_name not in destinations:
                loc = ("routes", index, "destinations", d_index)
                raise ConfigError(
                    f"{_where(path, text, loc)}: routes.{index}.destinations.{d_index}: "
                    f"unknown destination '{dest_name}'"
                )
    routes = {key: tuple(route.destinations) for key, (_, route) in route_src.items()}
    for cert_key, (path, text, sender_name) in client_certificates.items():
        if sender_name not in senders:
            raise ConfigError(
                f"{_where(path, text, ('client_certificates', cert_key))}: client_certificates."
                f"{cert_key}: unknown sender '{sender_name}'"
            )
    retention: RetentionConfig | None = policies.get("retention", (None, None))[1]
    if retention is not None:
        for name in retention.destinations:
            if name not in destinations:
                path = policies["retention"][0]
                text = path.read_text(encoding="utf-8")
                raise ConfigError(
                    f"{_where(path, text, ('retention', 'destinations', name))}: "
                    f"retention.destinations.{name}: unknown destination '{name}'"
                )
    if codelists is None:
        codelists = CodeLists.load([SHIPPED_SCHEMAS / "codelists", directory / "codelists"])
    # Files that mappings use (XSLT, code lists) change the behaviour: they count too.
    xsl_files = sorted(directory.glob("**/*.xsl*"))
    for extra in others + xsl_files + sorted(directory.glob("codelists/*.xml")):
        digest.update(str(extra.relative_to(directory)).encode() + b"\0" + extra.read_bytes())
    try:
        mappings = build_table(
            mapping_sources,
            {k: v for k, (v, _) in namespaces.items()},
            codelists,
            destinations,
            root=directory,
        )
    except MappingSourceError as exc:
        source = exc.source
        dotted = ".".join(str(p) for p in exc.loc)
        where = _where(source.path, source.text, exc.loc)
        raise ConfigError(f"{where}: {dotted}: {exc.message}") from None
    # Stylesheets the mappings actually read, includes and imports too, whatever their
    # name: a changed include changes the behaviour, so it changes the version.
    root = directory.resolve()
    for used in sorted(mappings.stylesheet_files - {p.resolve() for p in xsl_files}):
        digest.update(str(used.relative_to(root)).encode() + b"\0" + used.read_bytes())
    return GatewayConfig(
        senders,
        recipients,
        destinations,
        routes,
        digest.hexdigest()[:12],
        mappings=mappings,
        route_sources={key: src for key, (src, _) in route_src.items()},
        admins=admins,
        retention=retention,
        limits=policies.get("limits", (None, None))[1],
        client_certificates={k: name for k, (_, _, name) in client_certificates.items()},
    )


def _check_token(
    path: Path, text: str, section: str, name: str, token_sha256: str, owners: dict[str, str]
) -> None:
    """Each token belongs to one sender or admin, and none is guessable from its hash.

    The demo tokens pass here (the example configuration uses them); ``serve``/``api``
    refuse them outside demo mode and ``config check`` warns.
    """
    loc = (section, name, "token_sha256")
    key = f"{section}.{name}.token_sha256"
    if token_sha256 in owners:
        raise ConfigError(
            f"{_where(path, text, loc)}: {key}: the same token as {owners[token_sha256]}; "
            "every sender and admin needs its own (xoev-gateway token new)"
        )
    owners[token_sha256] = f"{section}.{name}"
    if token_sha256 in DEMO_HASHES:
        return
    why = weakness(token_sha256, name)
    if why is not None:
        raise ConfigError(
            f"{_where(path, text, loc)}: {key}: the hash of {why}, which anyone can reverse; "
            "generate one with 'xoev-gateway token new'"
        )


def _parse(path: Path, text: str) -> ConfigFile:
    if path.suffix == ".json":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
        return _validate(path, text, raw)
    try:
        # libyaml when available: a config for all ~11,000 municipalities loads in seconds.
        raw = yaml.load(text, Loader=_SafeLoader) or {}  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    return _validate(path, text, raw)


def _validate(path: Path, text: str, raw: object) -> ConfigFile:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}:1: the top level must be a mapping of sections")
    try:
        return ConfigFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(path, text, exc)) from None


def _destination(
    path: Path, text: str, name: str, dest: DestinationConfig, cache: dict[str, AdapterClass]
) -> Destination:
    loc: tuple[str | int, ...] = ("destinations", name, "adapter")
    try:
        cls = cache.get(dest.adapter) or load_adapter_class(dest.adapter)
    except ConfigError as exc:
        raise ConfigError(
            f"{_where(path, text, loc)}: destinations.{name}.adapter: {exc.detail}"
        ) from None
    cache[dest.adapter] = cls
    settings_in = _relative_paths(dest.settings, cls.settings_model, path.parent)
    try:
        settings = cls.settings_model.model_validate(settings_in)
    except ValidationError as exc:
        raise ConfigError(
            _describe(path, text, exc, prefix=("destinations", name, "settings"))
        ) from None
    return Destination(
        name=name,
        adapter=dest.adapter,
        adapter_class=cls,
        settings=settings,
        max_attempts=dest.max_attempts,
        backoff_base_seconds=dest.backoff_base_seconds,
        backoff_max_seconds=dest.backoff_max_seconds,
        timeout_seconds=dest.timeout_seconds,
        source=str(path),
    )


def _relative_paths(
    settings: dict[str, Any], model: type[AdapterSettings], base: Path
) -> dict[str, Any]:
    out = dict(settings)
    for key, info in model.model_fields.items():
        if info.annotation in (Path, Path | None) and isinstance(out.get(key), str):
            p = Path(out[key])
            out[key] = p if p.is_absolute() else (base / p)
    return out


def _unique(seen: dict[str, Any], name: str, path: Path, section: str) -> None:
    if name in seen:
        first = seen[name][0] if isinstance(seen[name], tuple) else seen[name].source
        raise ConfigError(f"{path}: {section}.{name}: already defined in {first}")


def _where(path: Path, text: str, loc: tuple[str | int, ...]) -> str:
    line = line_of(text, loc)
    return f"{path}:{line}" if line else str(path)


def _describe(
    path: Path, text: str, exc: ValidationError, prefix: tuple[str | int, ...] = ()
) -> str:
    lines = []
    for err in exc.errors():
        loc = prefix + tuple(err["loc"])
        key = ".".join(str(p) for p in loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
            if loc[0] == "senders" and loc[-1] == "role":
                msg += (
                    ": admins are not senders; move an admin to the 'admins:' section, "
                    "drop 'role' from senders (docs/security.md)"
                )
        lines.append(f"{_where(path, text, loc)}: {key}: {msg}")
    return "; ".join(lines)
