"""JSON Schema (2020-12, pydantic's) -> OpenAPI 3.0 Schema Object, pure.

It exists because the bundled Swagger UI (``swagger-ui-bundle``, Swagger UI 4.15) does
not render OpenAPI 3.1; with Swagger UI 5 assets the document could be 3.1 and this
module go.
"""

from __future__ import annotations

from typing import Any

_NULL = {"type": "null"}
_SCHEMA_KEYS = ("items", "additionalProperties", "not")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs")


def to_openapi30(schema: Any) -> Any:
    """Rewrite the parts of a JSON Schema that OpenAPI 3.0 spells differently.

    >>> to_openapi30({"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None})
    {'default': None, 'type': 'integer', 'nullable': True}
    >>> to_openapi30({"anyOf": [{"enum": ["GET"], "type": "string"}, {"type": "null"}]})
    {'enum': ['GET', None], 'type': 'string', 'nullable': True}
    """
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SCHEMA_KEYS:
            out[key] = to_openapi30(value)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [v if v == _NULL else to_openapi30(v) for v in value]
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {k: to_openapi30(v) for k, v in value.items()}
        else:
            out[key] = value  # keywords and literal values (default, enum) stay as they are
    for key in ("anyOf", "oneOf"):
        options = out.get(key)
        if isinstance(options, list) and _NULL in options:
            rest = [o for o in options if o != _NULL]
            del out[key]
            if len(rest) == 1 and "$ref" in rest[0]:
                out["allOf"] = rest  # 3.0 ignores siblings of a bare $ref
            elif len(rest) == 1:
                out = {**out, **rest[0]}
            elif rest:
                out[key] = rest
            out["nullable"] = True
    enum = out.get("enum")
    if out.get("nullable") and isinstance(enum, list) and None not in enum:
        # 3.0: nullable does not widen an enum; null must be one of its values
        out["enum"] = [*enum, None]
    if out.get("type") == "null":
        del out["type"]
        out["nullable"] = True
        out["enum"] = [None]
    if "const" in out:
        out["enum"] = [out.pop("const")]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = out.get(bound)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[plain] = value
            out[bound] = True
    examples = out.pop("examples", None)
    if isinstance(examples, list) and examples:
        out["example"] = examples[0]
    return out
