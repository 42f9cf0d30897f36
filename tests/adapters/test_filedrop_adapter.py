"""The ``filedrop`` adapter's mapped document: name pattern and content."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from adapters.filedrop import FileDropAdapter, FileDropSettings
from tests.support.mapped import FORMATS, mapped_delivery, previewed


@pytest.mark.parametrize("fmt", FORMATS)
async def test_mapped_document_is_the_previewed_rendering(tmp_path: Path, fmt: str) -> None:
    settings = FileDropSettings(
        directory=tmp_path, mapped_name="{municipality}_{message_uuid}.{ext}"
    )
    delivery = mapped_delivery(fmt)
    await FileDropAdapter(settings).deliver(delivery)
    ext = {"json": "json", "xml": "xml", "keyvalue": "txt"}[fmt]
    name = f"08111000_{delivery.message_uuid}.{ext}"
    assert (tmp_path / name).read_bytes() == previewed(fmt)[1].body
    meta = json.loads((tmp_path / f"{delivery.delivery_id}.json").read_bytes())
    assert meta["payload_file"] == name and meta["payload"] == previewed(fmt)[1].data
    assert (tmp_path / f"{delivery.delivery_id}.xml").read_bytes() == delivery.xml


@pytest.mark.parametrize(
    ("pattern", "cause"),
    [
        ("{municipality}.txt", "must contain one of"),
        ("{delivery_id}.{ext}", "the name of the metadata or original XML file"),
        ("{delivery_id}.{colour}", "unknown field ['colour']"),
        ("out/{delivery_id}.txt", "plain file name"),
        ("{delivery_id", "not a name pattern"),
    ],
)
def test_bad_name_patterns_are_config_errors(tmp_path: Path, pattern: str, cause: str) -> None:
    with pytest.raises(ValidationError, match="mapped_name") as info:
        FileDropSettings(directory=tmp_path, mapped_name=pattern)
    assert cause in str(info.value)
