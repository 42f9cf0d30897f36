"""Moved to :mod:`gateway.yaml_lines` (the schema catalogs report lines too); kept for the
routing code that imports it from here."""

from gateway.yaml_lines import line_of, lines_of

__all__ = ["line_of", "lines_of"]
