"""The gateway's error tree.

Every leaf maps to one RFC 9457 problem ``type`` on the API and one exit code on the CLI.

    GatewayError
    ├── IntakeError                     (rejected submissions, 4xx)
    │   ├── UnsupportedMediaType        415
    │   ├── PayloadTooLarge             413
    │   ├── MalformedXml                400  not well-formed, bad encoding, too deep
    │   ├── MalformedMultipart          400  broken multipart body, duplicate message part
    │   ├── UnsafeXml                   400  DTD, entities, XInclude
    │   ├── UnknownMessageType          422  no schema set for namespace + root
    │   ├── InvalidMessage              422  schema or business-rule violations
    │   ├── MissingRoutingKey           422  header lacks identity / recipient (names the XPath)
    │   ├── UnknownRecipient            422  recipient is no known municipality
    │   ├── NoRoute                     422  no route configured for recipient + service
    │   ├── DuplicateConflict           409  same nachrichtenUUID, other content
    │   ├── MalformedZip                400  not a ZIP, encrypted, not exactly one XML
    │   ├── ZipBomb                     413  uncompressed size, ratio or entry count over the limit
    │   ├── UnsafeZipPath               400  ``..``, absolute or drive paths in an entry name
    │   ├── DuplicateZipEntry           400  two entries of one name (case-insensitively)
    │   ├── NestedZip                   400  a ZIP inside the ZIP
    │   ├── ZipContentMismatch          422  files differ from those the message lists
    │   ├── InvalidAttachment           422  part without file name, unusable name or type
    │   └── UnacceptableField           422  a value the store cannot hold (length, NUL)
    ├── AuthError                       401
    │   ├── UnknownSender               401  a sender identity the configuration lacks
    │   └── Forbidden                   403
    │       ├── NotPermitted            403  the sender's grants do not cover it (``rule``)
    │       ├── AdminOnly               403  a sender credential on an admin endpoint
    │       └── NotASender              403  an admin credential on a sender endpoint
    ├── NotFound                        404
    ├── RateLimited                     429  over the sender's limit, or too many failed logins
    ├── Unavailable                     503  durability cannot be guaranteed now
    │   ├── StoreFileLost               503  the SQLite file was deleted or replaced
    │   └── InsufficientStorage         507  the data directory (or database) is full
    ├── ConfigError                     422  refused configuration (file, key, cause)
    ├── MappingError                    422  a mapping cannot be applied to this message
    ├── SchemaRegistryError                  schema set cannot be loaded
    ├── StoreNotFound                        a command that only reads found no database
    ├── CodeListRefused                 422  not a usable genericode list, or the config would break
    └── InvalidSettings                      an XOEV_GATEWAY_* variable is wrong (CLI exit 9)
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.report import ValidationReport


@dataclass(frozen=True)
class ErrorDetail:
    """One validation error: where (XPath and line) and what."""

    path: str
    line: int | None
    message: str


class GatewayError(Exception):
    status: int = 500
    slug: str = "internal"
    title: str = "Internal error"
    exit_code: int = 1

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def type_uri(self) -> str:
        return f"https://xoev-gateway.de/problems/{self.slug}"

    def __reduce__(self) -> tuple[object, ...]:
        # Intake processes send errors back pickled; subclasses take other constructor
        # arguments than ``args`` holds, so rebuild from the instance state instead.
        return (_restore, (type(self), self.__dict__))


def _restore(cls: type[GatewayError], state: dict[str, object]) -> GatewayError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("detail"))
    error.__dict__.update(state)
    return error


class IntakeError(GatewayError):
    status = 400
    slug = "intake"
    title = "Submission rejected"
    exit_code = 2
    report: ValidationReport | None = None
    """The validation report, when the rejection came from validating the message."""
    code: str | None = None
    """A machine-readable cause for the report (libxml2's error type name, ...)."""
    line: int | None = None
    column: int | None = None


class UnsupportedMediaType(IntakeError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class PayloadTooLarge(IntakeError):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class MalformedXml(IntakeError):
    status = 400
    slug = "malformed-xml"
    title = "XML is not well-formed"


class UnsafeXml(IntakeError):
    status = 400
    slug = "unsafe-xml"
    title = "XML uses a forbidden construct"


class UnknownMessageType(IntakeError):
    status = 422
    slug = "unknown-message-type"
    title = "Unknown message type"


class InvalidMessage(IntakeError):
    status = 422
    slug = "invalid-message"
    title = "Message is invalid"

    def __init__(self, detail: str, errors: list[ErrorDetail]) -> None:
        super().__init__(detail)
        self.errors = errors


class MissingRoutingKey(IntakeError):
    status = 422
    slug = "missing-routing-key"
    title = "Routing key missing in the message header"


class UnknownRecipient(IntakeError):
    status = 422
    slug = "unknown-recipient"
    title = "Recipient is not a known municipality"


class NoRoute(IntakeError):
    status = 422
    slug = "no-route"
    title = "No route configured for this recipient and service"


class DuplicateConflict(IntakeError):
    status = 409
    slug = "duplicate-conflict"
    title = "nachrichtenUUID already used for other content"


class MalformedZip(IntakeError):
    status = 400
    slug = "malformed-zip"
    title = "ZIP container is not usable"


class ZipBomb(IntakeError):
    status = 413
    slug = "zip-bomb"
    title = "ZIP container expands beyond the limits"


class UnsafeZipPath(IntakeError):
    status = 400
    slug = "unsafe-zip-path"
    title = "ZIP entry name leaves the container"


class DuplicateZipEntry(IntakeError):
    status = 400
    slug = "duplicate-zip-entry"
    title = "ZIP container holds two entries of one name"


class NestedZip(IntakeError):
    status = 400
    slug = "nested-zip"
    title = "ZIP container holds another archive"


class ZipContentMismatch(IntakeError):
    status = 422
    slug = "zip-content-mismatch"
    title = "ZIP files differ from the files the message lists"


class MalformedMultipart(IntakeError):
    status = 400
    slug = "malformed-multipart"
    title = "The multipart body cannot be read"


class InvalidAttachment(IntakeError):
    """An attachment part the gateway could not deliver: refused before the 202.

    ``field`` names the part, e.g. ``attachments[2].filename`` (1-based, in body order).
    """

    status = 422
    slug = "invalid-attachment"
    title = "Attachment refused"

    def __init__(self, detail: str, field: str) -> None:
        super().__init__(detail)
        self.field = field


class UnacceptableField(IntakeError):
    """A value longer than the store holds, or with characters it refuses (NUL).

    ``field`` names it, e.g. ``author`` or ``attachments[1].content_type``.
    """

    status = 422
    slug = "unacceptable-field"
    title = "A value exceeds what the gateway accepts"

    def __init__(self, detail: str, field: str) -> None:
        super().__init__(detail)
        self.field = field


class AuthError(GatewayError):
    status = 401
    slug = "unauthorized"
    title = "Authentication required"
    exit_code = 3


class UnknownSender(AuthError):
    """The accept path got a sender the active configuration does not know: removed by a
    reload after its request authenticated, or a transport identity (``fit-connect:…``)
    nobody configured. A source leaves such a submission with its transport."""

    slug = "unknown-sender"
    title = "Sender not configured"


class Forbidden(AuthError):
    status = 403
    slug = "forbidden"
    title = "Not allowed"


class NotPermitted(Forbidden):
    """The sender's configured grants do not cover this message; ``rule`` names which
    (``services``, ``regions`` or ``authors``) and goes into the problem as ``rule``."""

    slug = "not-permitted"
    title = "The sender may not send this"

    def __init__(self, detail: str, rule: str) -> None:
        super().__init__(detail)
        self.rule = rule


class AdminOnly(Forbidden):
    slug = "admin-only"
    title = "Admin credentials required"


class NotASender(Forbidden):
    slug = "not-a-sender"
    title = "Admin credentials cannot submit"


class NotFound(GatewayError):
    status = 404
    slug = "not-found"
    title = "Not found"
    exit_code = 4


class RateLimited(GatewayError):
    """Over a per-sender rate or byte limit, or too many failed authentications from one
    address; ``retry_after`` (seconds) becomes the ``Retry-After`` header."""

    status = 429
    slug = "rate-limited"
    title = "Too many requests"
    exit_code = 9

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unavailable(GatewayError):
    status = 503
    slug = "unavailable"
    title = "Temporarily unavailable, retry later"
    exit_code = 5


class StoreFileLost(Unavailable):
    """The SQLite file at the configured path is no longer the one this process has open
    (deleted or replaced while running): nothing written now would survive a restart."""

    slug = "store-file-lost"
    title = "Store file lost, retry later"


class InsufficientStorage(Unavailable):
    """No space left for the submission (blob files or database); the sender retries."""

    status = 507
    slug = "insufficient-storage"
    title = "Insufficient storage, retry later"


class ConfigError(GatewayError):
    status = 422
    slug = "config"
    title = "Configuration refused"
    exit_code = 6


class MappingError(GatewayError):
    """The effective mapping cannot turn this message into a payload (a permanent problem)."""

    status = 422
    slug = "mapping"
    title = "Mapping failed"
    exit_code = 8


class SchemaRegistryError(GatewayError):
    slug = "schema-registry"
    title = "Schema registry error"
    exit_code = 7


class StoreNotFound(GatewayError):
    """A command that reads the store found no database where the settings point: it
    never creates one (an empty new database would look like "nothing dead")."""

    status = 404
    slug = "store-not-found"
    title = "No gateway database"
    exit_code = 9


class InvalidSettings(GatewayError):
    """An environment setting cannot be read: one line naming the variable and the cause."""

    slug = "settings"
    title = "Invalid settings"
    exit_code = 9


class CodeListRefused(GatewayError):
    """A code list import refused: not a usable genericode file, or the configuration would
    not load with it (docs/codelists.md)."""

    status = 422
    slug = "codelist"
    title = "Code list refused"
    exit_code = 10
