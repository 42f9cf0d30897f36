"""How a schema set's message header is read: recipient, identity, type, author, time.

XÖV standards carry their header in different shapes (``schemas/README.md``, "Message
headers"): the Basisnachricht's ``nachrichtenkopf.g2g`` with ``leser/kennung = prefix:key``
and a ``nachrichtenUUID``; xdomea 2 and 3 with prefix and key in two elements and no
message UUID (a message is its process id plus its type); xdomea 4 with its own
``nachrichtenkopf``; and messages that carry no recipient at all. A catalog entry names a
shipped preset (``header: xdomea-3``) or spells out the XPaths, optionally on top of a
preset. The XPaths are compiled once per schema set, all single values into one XPath
that returns them joined (one C call per message, as fast as the fixed reader before).

The presets match on local names (``*[local-name()='kopf']``): standards differ in which
header parts are qualified (xdomea 4 leaves the Basisnachricht parts unqualified, XBau
its whole header), and a preset must read them all.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Literal, NamedTuple

from lxml import etree
from pydantic import BaseModel, ConfigDict, model_validator

from gateway.errors import MissingRoutingKey, SchemaRegistryError

DEFAULT_PRESET = "basisnachricht-g2g"
IDENTITY_NAMESPACE = uuid.UUID("2b0c3f5e-7a41-4d1c-9e6b-5d8f0a7c3e21")
"""UUIDv5 namespace for identities that are not themselves one UUID (compositions,
content hashes, per-sender scope): the store keys every message by a UUID-sized value."""


def local_path(*steps: str) -> str:
    """``a/b`` matched on local names, whatever the namespaces."""
    return "/".join(f"*[local-name()='{step}']" for step in steps)


class Kennung(BaseModel):
    """A DVDV-style kennung: one XPath giving ``prefix:key``, or prefix and key apart.

    Prefix and key are joined as ``prefix:key``; a prefix that already ends with the
    colon (xdomea 3 leaves that open) is taken without it, so both give ``ags:08116049``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    xpath: str | None = None
    prefix: str | None = None
    key: str | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> Kennung:
        split = self.prefix is not None or self.key is not None
        if (self.xpath is None) == (not split) or (split and None in (self.prefix, self.key)):
            raise ValueError("give either 'xpath', or both 'prefix' and 'key'")
        return self

    def paths(self) -> list[str]:
        return [self.xpath] if self.xpath is not None else [str(self.prefix), str(self.key)]

    def describe(self, name: str) -> list[tuple[str, str]]:
        if self.xpath is not None:
            return [(name, self.xpath)]
        return [(f"{name}.prefix", str(self.prefix)), (f"{name}.key", str(self.key))]


class Identity(BaseModel):
    """What makes a message unique: its own id (``xpath``), a ``compose``-ition of values
    (with ``message_type: true`` appending the message type), or its ``content`` hash.
    ``scope: sender`` makes identities unique per sender instead of gateway-wide."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    xpath: str | None = None
    compose: list[str] = []
    message_type: bool = False
    content: bool = False
    scope: Literal["global", "sender"] = "global"

    @model_validator(mode="after")
    def _one_kind(self) -> Identity:
        kinds = (self.xpath is not None) + bool(self.compose) + self.content
        if kinds != 1:
            raise ValueError("give exactly one of 'xpath', 'compose' or 'content: true'")
        if self.message_type and self.content:
            raise ValueError("'message_type' composes with 'xpath' or 'compose', not 'content'")
        return self

    def paths(self) -> list[str]:
        return [self.xpath] if self.xpath is not None else list(self.compose)

    def describe(self) -> list[tuple[str, str]]:
        if self.content:
            parts = ["SHA-256 of the XML"]
        else:
            parts = self.paths() + (["message type"] if self.message_type else [])
        return [("identity", " + ".join(parts) + f"  (unique per {self.scope_name})")]

    @property
    def scope_name(self) -> str:
        return "gateway" if self.scope == "global" else "sender"


class HeaderSpec(BaseModel):
    """The ``header:`` of a catalog entry, when it is more than a preset name.

    Fields left out come from ``preset`` (default ``basisnachricht-g2g``); ``recipient:
    null`` says the messages carry none (the transport or the sender's default gives it).
    XPaths are XPath 1.0, evaluated on the root element, with ``namespaces`` declared.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: str | None = None
    namespaces: dict[str, str] = {}
    recipient: Kennung | None = None
    identity: Identity | None = None
    message_type: str | None = None
    """XPath of the message type; default: the root element's local name."""
    author: Kennung | None = None
    created: str | None = None
    files: str | None = None
    """XPath selecting the file names the message lists (checked against a ZIP's files)."""


def _g2g(head: str) -> HeaderSpec:
    return HeaderSpec(
        recipient=Kennung(xpath=local_path(head, "leser", "kennung")),
        identity=Identity(xpath=local_path(head, "identifikation.nachricht", "nachrichtenUUID")),
        author=Kennung(xpath=local_path(head, "autor", "kennung")),
        created=local_path(head, "identifikation.nachricht", "erstellungszeitpunkt"),
    )


def _xdomea(key: str) -> HeaderSpec:
    authority = ("Kopf", "Empfaenger", "Behoerdenkennung")
    sender = ("Kopf", "Absender", "Behoerdenkennung")
    return HeaderSpec(
        recipient=Kennung(
            prefix=local_path(*authority, "Praefix", "code"),
            key=local_path(*authority, key, "code"),
        ),
        # All messages of one process share the ProzessID: the type tells them apart.
        identity=Identity(compose=[local_path("Kopf", "ProzessID")], message_type=True),
        author=Kennung(
            prefix=local_path(*sender, "Praefix", "code"), key=local_path(*sender, key, "code")
        ),
        created=local_path("Kopf", "Erstellungszeitpunkt"),
        files=".//" + local_path("Primaerdokument", "Dateiname"),
    )


PRESETS: dict[str, HeaderSpec] = {
    DEFAULT_PRESET: _g2g("nachrichtenkopf.g2g"),
    "xdomea-2": _xdomea("Kennung"),
    "xdomea-3": _xdomea("Behoerdenschluessel"),
    "xdomea-4": HeaderSpec(
        recipient=Kennung(
            xpath=local_path("nachrichtenkopf", "leser", "Behoerdenkennung", "kennung")
        ),
        identity=Identity(
            xpath=local_path("nachrichtenkopf", "identifikation.nachricht", "nachrichtenUUID")
        ),
        author=Kennung(xpath=local_path("nachrichtenkopf", "autor", "Behoerdenkennung", "kennung")),
        created=local_path("nachrichtenkopf", "identifikation.nachricht", "erstellungszeitpunkt"),
        files=".//" + local_path("Primaerdokument", "Dateiname"),
    ),
    # No recipient in the XML: the transport (a FIT-Connect destination) or the sender's
    # default_recipient gives it; identical content is the same message.
    "none": HeaderSpec(identity=Identity(content=True)),
}
"""The shipped presets; ``schemas/README.md`` lists their XPaths."""


def resolve_spec(header: str | HeaderSpec | None) -> tuple[str, HeaderSpec]:
    """A catalog entry's ``header`` as (description, complete spec)."""
    if header is None:
        return DEFAULT_PRESET, PRESETS[DEFAULT_PRESET]
    if isinstance(header, str):
        return header, _preset(header)
    base_name = header.preset or DEFAULT_PRESET
    base = _preset(base_name)
    overrides = {name: getattr(header, name) for name in header.model_fields_set - {"preset"}}
    spec = base.model_copy(update=overrides)
    if spec.identity is None:
        raise SchemaRegistryError("header: no 'identity'")
    return (f"{base_name} + {', '.join(sorted(overrides))}" if overrides else base_name), spec


def _preset(name: str) -> HeaderSpec:
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(PRESETS)
        raise SchemaRegistryError(f"header preset '{name}' is unknown (known: {known})") from None


def describe(spec: HeaderSpec) -> list[tuple[str, str]]:
    """(field, XPath) pairs as ``config check`` and ``schema fields`` show them."""
    rows: list[tuple[str, str]] = []
    rows += (
        spec.recipient.describe("recipient")
        if spec.recipient
        else [("recipient", "none in the message (transport or sender default_recipient)")]
    )
    assert spec.identity is not None
    rows += spec.identity.describe()
    rows.append(("message_type", spec.message_type or "local-name(/*)  (the root element)"))
    if spec.author:
        rows += spec.author.describe("author")
    if spec.created:
        rows.append(("created", spec.created))
    if spec.files:
        rows.append(("files", spec.files))
    return rows


class Header(NamedTuple):
    """What the header says, before the recipient is resolved against the config.

    Small and picklable: it comes back from the intake processes (a named tuple: built
    for every message, it is several times cheaper than a frozen dataclass).
    ``recipient`` is None when the message names none; ``recipient_missing`` then says
    where it was looked for.
    """

    message_uuid: str
    """The identity as the store keys it: the message's own id (lower case), or a UUIDv5
    of a composition or content hash."""
    message_type: str
    author: str | None
    recipient: str | None
    recipient_missing: str | None = None
    identity: tuple[str, ...] = ()
    """The composed values, when the identity is more than one id (shown in events)."""
    created: str | None = None
    files: tuple[str, ...] | None = None
    """The file names the message lists, if its schema set says where (``files``)."""
    per_sender: bool = False

    def key(self, sender: str) -> str:
        """The idempotency key the store keeps the message under."""
        if not self.per_sender:
            return self.message_uuid
        return str(uuid.uuid5(IDENTITY_NAMESPACE, f"{sender}\0{self.message_uuid}"))


def _identity_key(parts: list[str], own_id: bool) -> str:
    # The message's own id of UUID size is kept as it is (lower case, as the store has
    # always keyed nachrichtenUUIDs); anything else becomes a UUIDv5 (fits the same column).
    if own_id and len(parts) == 1 and len(parts[0]) <= 64:
        return parts[0].lower()
    return str(uuid.uuid5(IDENTITY_NAMESPACE, "\0".join(parts)))


class HeaderReader:
    """One schema set's header spec, compiled: built once at load, in every process."""

    def __init__(self, name: str, spec: HeaderSpec, schema_set: str) -> None:
        self.name = name
        self.spec = spec
        identity = spec.identity
        assert identity is not None  # resolve_spec guarantees one
        self.identity = identity
        paths: list[str] = identity.paths()
        self._identity_count = len(paths)
        self._recipient = spec.recipient.paths() if spec.recipient else []
        paths += self._recipient
        if spec.message_type:
            paths.append(spec.message_type)
        self._author = spec.author.paths() if spec.author else []
        paths += self._author
        if spec.created:
            paths.append(spec.created)
        self._paths = paths
        self._type_at = self._identity_count + len(self._recipient) if spec.message_type else None
        self._per_sender = identity.scope == "sender"
        self._own_id = identity.xpath is not None and not identity.message_type
        self._steps = [_local_steps(p) for p in paths]
        self._schema_set = schema_set
        namespaces = spec.namespaces or None
        self._values = _joined(paths, namespaces, schema_set) if paths else None
        self._learned: dict[str, tuple[etree.XPath, tuple[int, ...]]] = {}
        self._files = _compile(spec.files, namespaces, schema_set, "files") if spec.files else None
        probe = etree.Element("probe")
        for xpath in (self._values, self._files):
            if xpath is not None:
                try:
                    xpath(probe)  # an undeclared prefix only shows when evaluated
                except etree.XPathError as exc:
                    raise SchemaRegistryError(
                        f"schema set {schema_set}: header XPath {xpath.path!r}: {exc}"
                    ) from None

    def describe(self) -> list[tuple[str, str]]:
        return describe(self.spec)

    def read(self, root: etree._Element, body: bytes) -> Header:
        # Runs for every message: indexes into one list, no per-field loops.
        values = self._read_values(root) if self._values is not None else []
        n = self._identity_count
        parts = values[:n]
        if "" in parts:
            path = self._paths[parts.index("")]
            raise MissingRoutingKey(f"the message has no identity at {path}")
        at = n + len(self._recipient)
        recipient, missing = _kennung(values[n:at], self._recipient)
        if self._type_at is not None:
            message_type = values[self._type_at]
            if not message_type:
                raise MissingRoutingKey(f"the message has no type at {self.spec.message_type}")
            at += 1
        else:
            message_type = str(root.tag).rpartition("}")[2]
        author = _kennung(values[at : at + len(self._author)], self._author)[0]
        created = (values[-1] or None) if self.spec.created else None
        if self.identity.content:
            parts = [hashlib.sha256(body).hexdigest()]
        elif self.identity.message_type:
            parts.append(message_type)
        return Header(
            _identity_key(parts, self._own_id),
            message_type,
            author,
            recipient,
            missing,
            tuple(parts) if len(parts) > 1 else (),
            created,
            self._file_names(root) if self._files is not None else None,
            self._per_sender,
        )

    def _read_values(self, root: etree._Element) -> list[str]:
        assert self._values is not None
        tag = root.tag
        learned = self._learned.get(tag) if isinstance(tag, str) else None
        if learned is None:
            learned = self._learn(root)
        xpath, exact = learned
        values = str(xpath(root)).split("\n")
        for index in exact:
            if not values[index]:
                # Not where messages of this type had it before: ask the general XPath.
                return str(self._values(root)).split("\n")
        return values

    def _learn(self, root: etree._Element) -> tuple[etree.XPath, tuple[int, ...]]:
        """The header XPath with namespace tests instead of ``local-name()`` predicates.

        A local-name chain such as the presets use costs ~23 µs per message in libxml2,
        the same chain with namespace tests ~6 µs. Which header elements are qualified is
        fixed by the schema, so the qualified names found in the first message of a root
        element hold for the next (learned per root tag: bounded by the schemas, only
        validated messages get here); a learned value that comes out empty falls back to
        the general XPath, so a different message is still read exactly.
        """
        prefixes: dict[str, str] = {}
        paths: list[str] = []
        exact: list[int] = []
        for index, (path, steps) in enumerate(zip(self._paths, self._steps, strict=True)):
            qualified = _qualified(root, steps, prefixes) if steps is not None else None
            if qualified is not None:
                exact.append(index)
            paths.append(qualified or path)
        namespaces = {**self.spec.namespaces, **{p: uri for uri, p in prefixes.items()}}
        learned = (_joined(paths, namespaces or None, self._schema_set), tuple(exact))
        self._learned[str(root.tag)] = learned
        return learned

    def _file_names(self, root: etree._Element) -> tuple[str, ...]:
        assert self._files is not None
        found = self._files(root)
        items = found if isinstance(found, list) else [found]
        names = (i.text if isinstance(i, etree._Element) else str(i) for i in items)
        return tuple(n.strip() for n in names if n and n.strip())


def _kennung(values: list[str], paths: list[str]) -> tuple[str | None, str | None]:
    if not paths:
        return None, "the schema set's header names no recipient"
    if len(paths) == 1:
        return (values[0], None) if values[0] else (None, f"no recipient at {paths[0]}")
    prefix, key = values
    if prefix and key:
        return f"{prefix.removesuffix(':')}:{key}", None
    where = " and ".join(p for p, v in zip(paths, values, strict=True) if not v)
    return None, f"no recipient at {where}"


_LOCAL_STEP = re.compile(r"\*\[local-name\(\)='([^'\[\]/]+)'\]")


def _local_steps(path: str) -> tuple[str, ...] | None:
    """The local names of a pure ``*[local-name()='a']/*[local-name()='b']`` chain."""
    names = []
    for step in path.split("/"):
        match = _LOCAL_STEP.fullmatch(step)
        if match is None:
            return None
        names.append(match.group(1))
    return tuple(names)


def _qualified(
    root: etree._Element, steps: tuple[str, ...], prefixes: dict[str, str]
) -> str | None:
    node = root
    qualified: list[str] = []
    for name in steps:
        child = _first_child(node, name)
        if child is None:
            return None
        node = child
        tag = str(node.tag)
        if tag.startswith("{"):
            uri = tag[1 : tag.index("}")]
            prefix = prefixes.setdefault(uri, f"_h{len(prefixes)}")
            qualified.append(f"{prefix}:{name}")
        else:
            qualified.append(name)
    return "/".join(qualified)


def _first_child(parent: etree._Element, name: str) -> etree._Element | None:
    for child in parent:
        if isinstance(child.tag, str) and child.tag.rpartition("}")[2] == name:
            return child
    return None


def _joined(paths: list[str], namespaces: dict[str, str] | None, schema_set: str) -> etree.XPath:
    # normalize-space leaves no newline inside a value: the separator is unambiguous
    values = [f"normalize-space({p})" for p in paths]
    joined = "concat(" + ", '\n', ".join(values) + ")" if len(values) > 1 else values[0]
    return _compile(joined, namespaces, schema_set, "header")


def _compile(
    path: str, namespaces: dict[str, str] | None, schema_set: str, what: str
) -> etree.XPath:
    try:
        return etree.XPath(path, namespaces=namespaces)
    except etree.XPathSyntaxError as exc:
        raise SchemaRegistryError(
            f"schema set {schema_set}: {what} XPath {path!r}: {exc}"
        ) from None
