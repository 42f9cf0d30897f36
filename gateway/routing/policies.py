"""Configuration sections about data protection and load: retention, rate limits, client
certificates. Each is one optional section; at most one file of a configuration directory
may hold it (so that nobody has to work out how two retention sections merge)::

    retention:          # payload (XML + attachments) kept N days after the last delivery
      default: {payload_days: 30, dead_payload_days: 90}     # reached delivered / dead
      services: {hundesteuer.anmeldung.0101: {payload_days: 7}}
      destinations: {stuttgart-steueramt: {payload_days: 14}}
    limits:             # per sender, over one window: 429 with Retry-After when exceeded
      default: {requests: 600, bytes: 1073741824, window_seconds: 60}
      senders: {efa-portal: {requests: 6000}}
    client_certificates:  # mTLS: a verified client certificate authenticates as a sender
      "sha256:3a…": efa-portal             # the certificate's SHA-256 fingerprint, or
      "CN=portal.example,O=Land": efa-portal  # its subject (RFC 4514)
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

DAY = 86400.0


class RetentionPeriod(BaseModel):
    """Days after which a payload is erased; ``None``: this level says nothing (inherit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    payload_days: float | None = Field(default=None, ge=0)
    """After the last delivery was delivered."""
    dead_payload_days: float | None = Field(default=None, ge=0)
    """After the last delivery went dead (kept longer, so that a replay is still possible)."""


class RetentionConfig(BaseModel):
    """The most specific level wins, field by field: destination, then service, then default.
    No period anywhere: the payload is kept (as before retention existed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: RetentionPeriod = RetentionPeriod()
    services: dict[str, RetentionPeriod] = {}
    """Keyed by message type or LeiKa key."""
    destinations: dict[str, RetentionPeriod] = {}

    def seconds(self, services: Iterable[str], destination: str, *, dead: bool) -> float | None:
        """How long after reaching its final state one delivery keeps the payload alive."""
        levels = [self.destinations.get(destination)]
        levels += [self.services.get(service) for service in services]
        levels.append(self.default)
        for level in levels:
            if level is None:
                continue
            days = level.dead_payload_days if dead else level.payload_days
            if days is not None:
                return days * DAY
        return None

    @property
    def configured(self) -> bool:
        return self != RetentionConfig()


class RateLimit(BaseModel):
    """Per sender and window; ``None``: unlimited."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests: int | None = Field(default=None, ge=1)
    bytes: int | None = Field(default=None, ge=1)
    window_seconds: float = Field(default=60.0, gt=0)


class LimitsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default: RateLimit = RateLimit()
    senders: dict[str, RateLimit] = {}

    def for_sender(self, sender: str) -> RateLimit:
        return self.senders.get(sender, self.default)


def certificate_key(value: str) -> str:
    """Normalised form of a ``client_certificates`` key: ``sha256:<lowercase hex>`` without
    colons, or a subject with its RDNs as written (RFC 4514, as ``ssl`` reports them)."""
    if value.lower().startswith("sha256:"):
        return "sha256:" + value[7:].replace(":", "").lower()
    return ",".join(part.strip() for part in value.split(","))
