"""The mapping language as it stands in the YAML files (validated by pydantic).

A mapping entry belongs to a service (message type) and a level of the regional key::

    namespaces:                     # prefixes, declared once for all mappings
      hs: https://xoev-gateway.de/schemata/hundesteuer/1_0
    mappings:
      - service: hundesteuer.anmeldung.0101
        municipality: "08"          # '*', Land 2, RB 3, Kreis 5, AGS 8 or ARS 12 digits
        destination: bw-kasse       # optional: only for this destination
        format: json                # json | xml | keyvalue
        fields:
          name: hs:hund/hs:name     # a plain string is an XPath
          rasse: {xpath: hs:hund/hs:rasse/code, map: {values: {"122": LAB}, default: SONST}}
          iban: null                # removes a field inherited from a less specific level

A field is exactly one of ``xpath``, ``const``, ``template``, ``items``, ``fields`` or
``xslt``; ``when`` makes any field conditional.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    model_validator,
)

from gateway.municipality import MunicipalityPrefix

Scalar = str | int | float | bool | None

KINDS = ("xpath", "const", "template", "items", "fields", "xslt")


class ValueMap(BaseModel):
    """Codes to the Fachverfahren's values. Without ``default`` an unmapped code is an error.

    With ``codelist`` (a listURI) and a known code list, the map must cover every code of
    the list unless it has a ``default``; codes that the list does not have are refused.
    """

    model_config = ConfigDict(extra="forbid")

    values: dict[str, Scalar]
    default: Scalar = None
    codelist: str | None = None

    @property
    def has_default(self) -> bool:
        return "default" in self.model_fields_set


def _xpath_shorthand(value: Any) -> Any:
    # A plain string is an XPath. Converted before validation (instead of a union type)
    # so that errors name the key, not pydantic's union members.
    return {"xpath": value} if isinstance(value, str) else value


FieldValue = Annotated["FieldSpec | None", BeforeValidator(_xpath_shorthand)]


class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    xpath: str | None = Field(default=None, description="XPath of the value (first match)")
    const: JsonValue = Field(default=None, description="A constant value")
    template: str | None = Field(
        default=None, description="Text with {name} placeholders, each an XPath in 'args'"
    )
    args: dict[str, str] = Field(default={}, description="Template placeholders: name → XPath")
    items: str | None = Field(
        default=None, description="XPath of repeated nodes: a list (of objects with 'fields')"
    )
    fields: dict[str, FieldValue] | None = Field(
        default=None, description="Nested object (relative to each of 'items' if given)"
    )
    xslt: str | None = Field(
        default=None, description="XSLT file (relative to the config file); value = its result"
    )
    type: Literal["string", "integer", "number", "boolean", "date", "datetime"] = "string"
    format: str | None = Field(
        default=None,
        description="date/datetime: strftime pattern (%d.%m.%Y); number: format spec (.2f)",
    )
    decimal_separator: str | None = Field(default=None, max_length=1)
    map: ValueMap | None = None
    when: str | None = Field(default=None, description="XPath condition: field only if true")
    required: bool = Field(default=False, description="No value is a mapping error")
    default: Scalar = Field(default=None, description="Value when the XPath selects nothing")

    @model_validator(mode="after")
    def _one_kind(self) -> FieldSpec:
        kinds = [k for k in KINDS if k in self.model_fields_set and k != "fields"]
        if "fields" in self.model_fields_set and "items" not in kinds:
            kinds.append("fields")
        if len(kinds) != 1:
            raise ValueError(
                "a field needs exactly one of xpath, const, template, items, fields, xslt"
                + (f" (has {', '.join(kinds)})" if kinds else "")
            )
        if self.args and self.template is None:
            raise ValueError("'args' belongs to a 'template'")
        return self

    @property
    def kind(self) -> str:
        for k in KINDS:
            if k in self.model_fields_set:
                return k
        return "fields"  # pragma: no cover - the validator guarantees a kind

    @property
    def has_default(self) -> bool:
        return "default" in self.model_fields_set


class MappingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str = Field(description="Message type (root element name)")
    municipality: MunicipalityPrefix = Field(
        default="*", validate_default=True, description="'*' or a key of 2, 3, 5, 8 or 12 digits"
    )
    destination: str | None = Field(default=None, description="Only for this destination")
    format: Literal["json", "xml", "keyvalue"] | None = None
    xml_root: str | None = Field(default=None, description="Root element name for format xml")
    xml_namespace: str | None = None
    fields: dict[str, FieldValue] = {}


FieldSpec.model_rebuild()


def allow_xpath_shorthand(schema: Any) -> Any:
    """JSON Schema: where a field spec may stand, a plain string (an XPath) may too."""
    if isinstance(schema, dict):
        any_of = schema.get("anyOf")
        if isinstance(any_of, list) and {"$ref": "#/$defs/FieldSpec"} in any_of:
            any_of.insert(1, {"type": "string", "description": "XPath of the value"})
        for value in schema.values():
            allow_xpath_shorthand(value)
    elif isinstance(schema, list):
        for value in schema:
            allow_xpath_shorthand(value)
    return schema
