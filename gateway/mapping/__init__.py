"""Per-municipality mapping: the validated XML turned into what a Fachverfahren expects.

``model`` is the YAML language (pydantic), ``compile`` turns one config entry into
compiled lxml XPath/XSLT objects once per config load, ``table`` merges the entries along
the regional key (Land → Kreis → municipality, field by field), ``apply`` runs an effective
mapping over a parsed message and renders JSON, XML or key/value.
"""
