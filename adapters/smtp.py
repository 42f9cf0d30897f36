"""SMTP: an e-mail per delivery to a functional mailbox (Funktionspostfach).

The mail carries a readable text rendering of the application, the XML as received, the
mapped document when the route maps fields (``mapped.<json|xml|txt>`` in its media type,
exactly as rendered) and the attachments. Its ``Message-ID`` is derived from the delivery
id, so a redelivery is the same message again: idempotency at the receiving side is best
effort, as good as the mailbox or importer that drops duplicate Message-IDs (many do; a
human reader sees two identical mails otherwise). Use ``http`` or ``sftp`` where
exactly-once matters.

Outcomes: SMTP 4xx replies, timeouts and connection errors are transient; 5xx replies
(including failed authentication) are permanent.
"""

from __future__ import annotations

import ssl
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Literal

import aiosmtplib
from pydantic import Field, field_validator

from adapters._mapped import EXTENSIONS, MEDIA_TYPES
from adapters._render import text_summary
from gateway.sdk import (
    Adapter,
    AdapterSettings,
    Delivery,
    PermanentDeliveryError,
    Receipt,
    SecretEnv,
    TransientDeliveryError,
    secret_from_env,
)

SUBJECT_FIELDS = ("message_type", "municipality", "delivery_id", "message_uuid", "sender")


class SmtpSettings(AdapterSettings):
    host: str
    port: int = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    """``starttls`` (submission, 587), ``tls`` (implicit, 465) or ``none`` (local relay)."""
    username: str | None = None
    password_env: SecretEnv | None = None
    ca_file: Path | None = None
    """Trust this CA for the server certificate (default: the system's)."""
    from_address: str
    to: list[str] = Field(min_length=1)
    subject: str = "Antrag {message_type} für {municipality} ({delivery_id})"
    """Template; fields: message_type, municipality, delivery_id, message_uuid, sender."""
    timeout_seconds: float = Field(default=60.0, gt=0)

    @field_validator("subject")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        try:
            value.format_map({f: "" for f in SUBJECT_FIELDS})
        except (KeyError, ValueError, IndexError) as exc:
            raise ValueError(f"unknown field {exc} (known: {SUBJECT_FIELDS})") from None
        return value


class SmtpAdapter(Adapter[SmtpSettings]):
    settings_model = SmtpSettings

    async def deliver(self, delivery: Delivery) -> Receipt:
        s = self.settings
        message = self.message(delivery)
        tls_context = ssl.create_default_context(
            cafile=str(s.ca_file) if s.ca_file is not None else None
        )
        try:
            await aiosmtplib.send(
                message,
                hostname=s.host,
                port=s.port,
                username=s.username,
                password=secret_from_env(s.password_env) if s.password_env else None,
                use_tls=s.security == "tls",
                start_tls=s.security == "starttls",
                tls_context=tls_context if s.security != "none" else None,
                timeout=s.timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            problem = f"recipients refused: {[f'{r.recipient} {r.code}' for r in exc.recipients]}"
            if all(400 <= code < 500 for code in codes):
                raise TransientDeliveryError(problem) from None
            raise PermanentDeliveryError(problem) from None
        except aiosmtplib.SMTPResponseException as exc:
            problem = f"SMTP {exc.code}: {exc.message}"
            if 400 <= exc.code < 500:
                raise TransientDeliveryError(problem) from None
            raise PermanentDeliveryError(problem) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise TransientDeliveryError(f"SMTP failed: {type(exc).__name__}: {exc}") from None
        return Receipt(reference=message["Message-ID"], message=f"mailed to {', '.join(s.to)}")

    def message(self, delivery: Delivery) -> EmailMessage:
        s = self.settings
        domain = s.from_address.rpartition("@")[2] or "xoev-gateway.invalid"
        message = EmailMessage()
        message["From"] = s.from_address
        message["To"] = ", ".join(s.to)
        message["Subject"] = s.subject.format_map(
            {f: str(getattr(delivery, f)) for f in SUBJECT_FIELDS}
        )
        message["Date"] = formatdate(localtime=False)
        # Stable across redeliveries: the receiving side can drop duplicates by it.
        message["Message-ID"] = f"<{delivery.delivery_id}@{domain}>"
        message["X-Xoev-Delivery-Id"] = delivery.delivery_id
        message.set_content(text_summary(delivery))
        message.add_attachment(
            delivery.xml,
            maintype="application",
            subtype="xml",
            filename=f"{delivery.message_type}.xml",
        )
        if delivery.payload_body is not None and delivery.payload_format is not None:
            media = MEDIA_TYPES.get(delivery.payload_format, "application/octet-stream")
            maintype, _, subtype = media.partition(";")[0].partition("/")
            ext = EXTENSIONS.get(delivery.payload_format, "bin")
            # Bytes, not text: the mail carries the rendering unchanged (base64), never
            # re-encoded or re-wrapped by the mail library.
            message.add_attachment(
                delivery.payload_body, maintype=maintype, subtype=subtype, filename=f"mapped.{ext}"
            )
        for att in delivery.attachments:
            essence = att.content_type.partition(";")[0].strip()
            maintype, _, subtype = essence.partition("/")
            with att.open() as fh:
                message.add_attachment(
                    fh.read(),
                    maintype=maintype or "application",
                    subtype=subtype or "octet-stream",
                    filename=att.file_name,
                )
        return message
