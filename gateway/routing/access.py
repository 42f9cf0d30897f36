"""Who may do what: senders with their grants, and admins, who are not senders.

A sender may submit only the services (message types or LeiKa keys) for the regions
(AGS/ARS prefixes, ``*`` for all) its configuration grants, and, if it lists any, only
under its own author kennungen (the Nachrichtenkopf's ``autor/kennung`` is the sender's
claim, not proof: without a list it is not checked). Admins reach the admin endpoints and
may read any submission, but cannot submit; senders cannot reach admin endpoints.
See ``docs/security.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import NotPermitted
from gateway.municipality import prefixes

ANY = "*"


@dataclass(frozen=True, slots=True)
class Sender:
    """An authenticated sender and what it may send.

    ``regions`` holds AGS prefixes (an ARS already turned into its AGS prefix; ``""`` is
    every municipality); ``authors`` is None when the sender's author is not restricted.
    """

    name: str
    services: frozenset[str]
    regions: frozenset[str]
    authors: frozenset[str] | None = None

    def authorize(self, municipality: str, services: tuple[str, ...], author: str | None) -> None:
        """Raise ``NotPermitted`` naming the first rule the message breaks; O(1) lookups."""
        if ANY not in self.services and not any(s in self.services for s in services):
            raise NotPermitted(
                f"sender '{self.name}' may not send {' / '.join(services)}: "
                "not among its granted services",
                rule="services",
            )
        if not any(p in self.regions for p in prefixes(municipality)):
            raise NotPermitted(
                f"sender '{self.name}' may not send for municipality {municipality}: "
                "not within its granted regions",
                rule="regions",
            )
        if self.authors is not None and author not in self.authors:
            shown = f"'{author}'" if author else "none"
            raise NotPermitted(
                f"sender '{self.name}' may not use the author kennung {shown}: "
                "not among its granted authors",
                rule="authors",
            )


@dataclass(frozen=True, slots=True)
class Admin:
    """An authenticated administrator: admin endpoints, no submissions."""

    name: str

    @property
    def actor(self) -> str:
        """How the audit log names it."""
        return f"admin:{self.name}"


Principal = Sender | Admin
