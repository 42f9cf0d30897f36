"""A readable text rendering of a submission, for people (e-mail bodies)."""

from __future__ import annotations

from lxml import etree

from gateway.sdk import Delivery

# The XML was validated at intake; still, never let a rendering resolve anything.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def text_summary(delivery: Delivery) -> str:
    """Header facts, then every element with text as an indented ``name: value`` line."""
    lines = [
        f"Nachrichtentyp: {delivery.message_type}",
        f"Gemeinde (AGS): {delivery.municipality}",
        f"Nachrichten-UUID: {delivery.message_uuid}",
        f"Zustellungs-ID: {delivery.delivery_id}",
        f"Absender: {delivery.sender}",
    ]
    if delivery.attachments:
        lines.append("Anlagen: " + ", ".join(a.name for a in delivery.attachments))
    lines.append("")
    try:
        root = etree.fromstring(delivery.xml, _PARSER)
    except etree.XMLSyntaxError:
        return "\n".join([*lines, "(the XML is attached)"])
    _walk(root, 0, lines)
    return "\n".join(lines) + "\n"


def _walk(element: etree._Element, depth: int, lines: list[str]) -> None:
    if not isinstance(element.tag, str):  # comments, processing instructions
        return
    name = etree.QName(element).localname
    text = (element.text or "").strip()
    children = [c for c in element if isinstance(c.tag, str)]
    if children:
        lines.append(f"{'  ' * depth}{name}:" + (f" {text}" if text else ""))
        for child in children:
            _walk(child, depth + 1, lines)
    elif text:
        lines.append(f"{'  ' * depth}{name}: {text}")
