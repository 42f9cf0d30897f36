"""Header specs: presets, overrides, load-time errors, and the learned fast path."""

from __future__ import annotations

import pickle

import pytest
from lxml import etree

from gateway.errors import MissingRoutingKey, SchemaRegistryError
from gateway.intake.header import (
    PRESETS,
    Header,
    HeaderReader,
    HeaderSpec,
    Identity,
    Kennung,
    local_path,
    resolve_spec,
)
from tests.support import header_messages as m


def reader(header: str | HeaderSpec | None) -> HeaderReader:
    return HeaderReader(*resolve_spec(header), "test")


def read(header: str | HeaderSpec | None, body: bytes) -> tuple[HeaderReader, Header]:
    r = reader(header)
    return r, r.read(etree.fromstring(body), body)


def test_presets_cover_the_families() -> None:
    assert set(PRESETS) == {"basisnachricht-g2g", "xdomea-2", "xdomea-3", "xdomea-4", "none"}
    assert resolve_spec(None)[0] == "basisnachricht-g2g"


def test_unknown_preset_is_refused_with_the_known_ones() -> None:
    with pytest.raises(SchemaRegistryError, match="'xdomea-9' is unknown.*xdomea-3"):
        resolve_spec("xdomea-9")


def test_override_on_top_of_a_preset() -> None:
    name, spec = resolve_spec(HeaderSpec(preset="xdomea-3", identity=Identity(xpath="x")))
    assert name == "xdomea-3 + identity"
    assert spec.identity == Identity(xpath="x")
    assert spec.recipient == PRESETS["xdomea-3"].recipient


def test_recipient_null_overrides_the_presets_recipient() -> None:
    spec = HeaderSpec.model_validate({"recipient": None})
    assert resolve_spec(spec)[1].recipient is None


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="both 'prefix' and 'key'"):
        Kennung(prefix="a")
    with pytest.raises(ValueError, match="exactly one"):
        Identity(xpath="a", content=True)


def test_bad_xpaths_are_refused_at_load() -> None:
    with pytest.raises(SchemaRegistryError, match="schema set test: header XPath"):
        reader(HeaderSpec(identity=Identity(xpath="a[")))
    with pytest.raises(SchemaRegistryError, match="Undefined namespace prefix"):
        reader(HeaderSpec(identity=Identity(xpath="q:id")))


def test_prefix_is_normalised_with_or_without_colon() -> None:
    for prefix in ("ags", "ags:"):
        _, header = read("xdomea-3", m.xdomea(3, "p", prefix=prefix))
        assert header.recipient == "ags:08111000"


def test_missing_identity_names_the_xpath() -> None:
    spec = HeaderSpec(identity=Identity(xpath=local_path("nope")))
    with pytest.raises(MissingRoutingKey, match=r"no identity at \*\[local-name\(\)='nope'\]"):
        read(spec, m.g2g())


def test_learned_path_falls_back_when_a_message_differs() -> None:
    g2g = reader(None)
    first = m.g2g("ags:08111000")
    root = etree.fromstring(first)
    assert g2g.read(root, first).recipient == "ags:08111000"
    # Same root element, header now qualified: the learned (unqualified) path finds nothing,
    # the general local-name path still reads it.
    qualified = first.replace(b"<nachrichtenkopf.g2g>", b'<h:nachrichtenkopf.g2g xmlns:h="urn:h">')
    qualified = qualified.replace(b"</nachrichtenkopf.g2g>", b"</h:nachrichtenkopf.g2g>")
    header = g2g.read(etree.fromstring(qualified), qualified)
    assert header.recipient == "ags:08111000"
    assert header.author == "efa:test"


def test_header_is_small_and_picklable() -> None:
    _, header = read("xdomea-3", m.xdomea(3, "p", files=("a.pdf",)))
    assert pickle.loads(pickle.dumps(header)) == header
    assert header.files == ("a.pdf",)
    assert len(pickle.dumps(header, protocol=pickle.HIGHEST_PROTOCOL)) < 400
