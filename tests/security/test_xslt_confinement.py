"""Stylesheets in mappings read only files inside the configuration directory (no other
files, no network), and every file they include counts in the configuration version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.routing.config import load_config
from tests.support.gateway_process import REPO

STYLESHEET = """<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  {include}
  <xsl:template match="/"><Adresse><xsl:call-template name="zeile"/></Adresse></xsl:template>
</xsl:stylesheet>
"""
NAMED = """<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template name="zeile">{text}</xsl:template>
</xsl:stylesheet>
"""


def use(config_dir: Path, include: str) -> Path:
    stylesheet = config_dir / "xslt" / "meldeadresse.xsl"
    stylesheet.write_text(STYLESHEET.format(include=include))
    return stylesheet


@pytest.mark.parametrize(
    "href",
    [
        "file://{outside}",
        "{outside}",
        "../../outside/zeile.xsl",
        "http://127.0.0.1:9/zeile.xsl",
    ],
)
@pytest.mark.parametrize("element", ["include", "import"])
def test_includes_and_imports_outside_the_config_are_refused(
    config_dir: Path, tmp_path: Path, href: str, element: str
) -> None:
    outside = tmp_path / "outside" / "zeile.xsl"
    outside.parent.mkdir()
    outside.write_text(NAMED.format(text="from outside"))
    href = href.format(outside=outside)
    use(config_dir, f'<xsl:{element} href="{href}"/>')
    with pytest.raises(ConfigError) as refused:
        load_config(config_dir)
    assert "refused" in refused.value.detail
    assert "mappings.yaml" in refused.value.detail  # where the mapping names it


def test_a_mapping_stylesheet_outside_the_config_is_refused(
    config_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "elsewhere.xsl").write_text(STYLESHEET.format(include=""))
    mappings = config_dir / "mappings.yaml"
    mappings.write_text(mappings.read_text().replace("xslt/meldeadresse.xsl", "../elsewhere.xsl"))
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "config", "check", "--config", str(config_dir)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 6
    assert "outside the configuration directory" in result.stderr


def test_included_files_inside_count_in_the_version(config_dir: Path) -> None:
    included = config_dir / "xslt" / "zeile.inc"  # not named *.xsl: still part of the version
    included.write_text(NAMED.format(text="eins"))
    use(config_dir, '<xsl:include href="zeile.inc"/>')
    first = load_config(config_dir).version
    assert load_config(config_dir).version == first
    included.write_text(NAMED.format(text="zwei"))
    assert load_config(config_dir).version != first
