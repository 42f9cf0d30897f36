"""An SMTP server (aiosmtpd) standing in for a functional mailbox: ``python -m ... DIR PORT``.

Options: ``--starttls CERT KEY`` (STARTTLS required, AUTH only after it) or ``--tls CERT KEY``
(implicit TLS). User ``gateway`` with the password in ``SMTP_PASSWORD``. Each accepted mail
is stored as ``DIR/mailbox/<sha256 of Message-ID>.eml``: the mailbox drops duplicates by
Message-ID, as importers of functional mailboxes do. Faults come from ``DIR/fault``.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import hashlib
import os
import ssl
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.faults import take_fault


class Mailbox:
    def __init__(self, directory: Path) -> None:
        self.mailbox = directory / "mailbox"
        self.mailbox.mkdir(parents=True, exist_ok=True)
        self.fault = directory / "fault"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mode = take_fault(self.fault)
        if mode == "transient":
            return "451 4.3.0 mailbox busy (test fault)"
        if mode == "permanent":
            return "554 5.6.0 message refused (test fault)"
        if mode == "hang":
            await asyncio.sleep(3)
        content: bytes = envelope.content
        message_id = email.message_from_bytes(content)["Message-ID"] or ""
        name = hashlib.sha256(message_id.encode()).hexdigest()
        (self.mailbox / f"{name}.eml").write_bytes(content)
        return "250 2.0.0 OK"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", type=Path)
    parser.add_argument("port", type=int)
    parser.add_argument("--starttls", nargs=2, type=Path)
    parser.add_argument("--tls", nargs=2, type=Path)
    args = parser.parse_args()
    password = os.environ["SMTP_PASSWORD"].encode()

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login == b"gateway" and auth_data.password == password
        )
        # handled=False: aiosmtpd then answers 535 itself (the default leaves it unanswered).
        return AuthResult(success=ok, handled=False)

    cert = args.starttls or args.tls
    context = None
    if cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    controller = Controller(
        Mailbox(args.directory),
        hostname="127.0.0.1",
        port=args.port,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=args.starttls is not None,
        require_starttls=args.starttls is not None,
        tls_context=context if args.starttls else None,
        ssl_context=context if args.tls else None,
    )
    controller.start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
