"""Messages for the made-up header-family schemas in ``tests/data/headers``."""

from __future__ import annotations

import hashlib
import io
import uuid
import zipfile
from pathlib import Path

HEADERS_DIR = Path(__file__).resolve().parents[1] / "data" / "headers"
NS = "urn:xoev-gateway:test:headers:"
SENDER_TOKEN = "hs-7c1f0e2a9b4d4e7f8a3c2b1d0e9f8a7b"
DEFAULT_TOKEN = "hd-5e4d3c2b1a0f4e9d8c7b6a5f4e3d2c1b"


def config_yaml(out: Path) -> str:
    """Senders (one with a default recipient) and routes for the test message types."""

    def sha(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    services = [
        "antrag.test.0001",
        "Vorgang.Abgabe.0401",
        "Vorgang.Anbieten.0501",
        "Vorgang.Bewerten.0502",
        "fund.meldung.0001",
        "meldung.eigen.0001",
    ]
    grants = f"services: [{', '.join(services)}], regions: ['08111000', '05315000']"
    routes = "\n".join(
        f'  - {{municipality: "08111000", service: {s}, destinations: [headers-stuttgart]}}\n'
        f'  - {{municipality: "05315000", service: {s}, destinations: [headers-koeln]}}'
        for s in services
    )
    return (
        "senders:\n"
        f'  headers-sender: {{token_sha256: "{sha(SENDER_TOKEN)}", {grants}}}\n'
        f'  headers-default: {{token_sha256: "{sha(DEFAULT_TOKEN)}", {grants}, '
        'default_recipient: "ags:05315000"}\n'
        "destinations:\n"
        f"  headers-stuttgart: {{adapter: filedrop, settings: {{directory: {out}/stuttgart}}}}\n"
        f"  headers-koeln: {{adapter: filedrop, settings: {{directory: {out}/koeln}}}}\n"
        f"routes:\n{routes}\n"
    )


def g2g(recipient: str = "ags:08111000", message_uuid: str | None = None) -> bytes:
    message_uuid = message_uuid or str(uuid.uuid4())
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<t:antrag.test.0001 xmlns:t="{NS}g2g">
  <nachrichtenkopf.g2g>
    <identifikation.nachricht>
      <nachrichtenUUID>{message_uuid}</nachrichtenUUID>
      <erstellungszeitpunkt>2026-11-03T09:41:27+01:00</erstellungszeitpunkt>
    </identifikation.nachricht>
    <leser><kennung>{recipient}</kennung></leser>
    <autor><kennung>efa:test</kennung></autor>
  </nachrichtenkopf.g2g>
  <text>Hallo</text>
</t:antrag.test.0001>
""".encode()


def _behoerde(element: str, key_element: str, prefix: str, key: str) -> str:
    return (
        f"<x:{element}><x:Behoerdenkennung>"
        f"<x:{key_element}><code>{key}</code></x:{key_element}>"
        f"<x:Praefix><code>{prefix}</code></x:Praefix>"
        f"</x:Behoerdenkennung></x:{element}>"
    )


def xdomea(
    version: int,
    process: str,
    message_type: str = "Vorgang.Anbieten.0501",
    prefix: str | None = "ags",
    key: str = "08111000",
    files: tuple[str, ...] = (),
    note: str = "",
) -> bytes:
    """An xdomea-2 or -3 style message (``prefix=None``: no Empfaenger at all)."""
    key_element = "Kennung" if version == 2 else "Behoerdenschluessel"
    recipient = _behoerde("Empfaenger", key_element, prefix, key) if prefix is not None else ""
    documents = "".join(
        f"<x:Dokument><x:Primaerdokument><x:Dateiname>{name}</x:Dateiname>"
        "</x:Primaerdokument></x:Dokument>"
        for name in files
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!--{note}-->
<x:{message_type} xmlns:x="{NS}xdomea{version}">
  <x:Kopf>
    <x:ProzessID>{process}</x:ProzessID>
    <x:Erstellungszeitpunkt>2026-11-03T09:41:27+01:00</x:Erstellungszeitpunkt>
    {_behoerde("Absender", key_element, "psw", "99999999")}
    {recipient}
  </x:Kopf>
  {documents}
</x:{message_type}>
""".encode()


def xdomea4(kennung: str = "ags:05315000", message_uuid: str | None = None) -> bytes:
    message_uuid = message_uuid or str(uuid.uuid4())
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<x:Vorgang.Anbieten.0501 xmlns:x="{NS}xdomea4">
  <x:nachrichtenkopf>
    <identifikation.nachricht>
      <nachrichtenUUID>{message_uuid}</nachrichtenUUID>
      <erstellungszeitpunkt>2026-11-03T09:41:27+01:00</erstellungszeitpunkt>
    </identifikation.nachricht>
    <x:leser><x:Behoerdenkennung><x:kennung>{kennung}</x:kennung>
      <x:verzeichnisdienst>DVDV</x:verzeichnisdienst></x:Behoerdenkennung></x:leser>
    <x:autor><x:Behoerdenkennung><x:kennung>psw:99999999</x:kennung>
      <x:verzeichnisdienst>DVDV</x:verzeichnisdienst></x:Behoerdenkennung></x:autor>
  </x:nachrichtenkopf>
  <x:Betreff>Aussonderung</x:Betreff>
</x:Vorgang.Anbieten.0501>
""".encode()


def fund(thing: str = "Schirm") -> bytes:
    return (
        f'<f:fund.meldung.0001 xmlns:f="{NS}none"><f:gegenstand>{thing}</f:gegenstand>'
        "</f:fund.meldung.0001>"
    ).encode()


def custom(process: str, prefix: str = "ags:", key: str = "08111000") -> bytes:
    return f"""<c:meldung.eigen.0001 xmlns:c="{NS}custom">
  <c:vorgang>{process}</c:vorgang><c:von>efa:eigen</c:von>
  <c:an><c:art>{prefix}</c:art><c:nummer>{key}</c:nummer></c:an>
</c:meldung.eigen.0001>""".encode()


def zip_of(*entries: tuple[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()
