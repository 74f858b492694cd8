"""The OpenAPI document of the declared endpoints (:mod:`web.endpoints`), and its route.

:func:`build_spec` writes it from the very models the routes validate with, so it cannot
drift from the code; :func:`describe_refusal` adds what a middleware answers in front of
the endpoints (the body limit, the bearer token).  The document is OpenAPI 3.0.3:
pydantic's JSON Schema goes through :func:`web.openapi30.to_openapi30`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from pydantic import BaseModel, TypeAdapter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, compile_path

from web.endpoints import AnyEndpoint, Reply
from web.errors import ErrorBody
from web.openapi30 import to_openapi30

REF_TEMPLATE = "#/components/schemas/{model}"


def openapi_route(spec: Mapping[str, Any], path: str = "/openapi.json") -> Route:
    body = json.dumps(spec, separators=(",", ":")).encode()

    async def openapi(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return Route(path, openapi, methods=["GET"], include_in_schema=False)


class _Components:
    """``components.schemas``, filled as endpoints are described; a name claimed by two
    different schemas is an error (rename one of the models)."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def add(self, name: str, schema: Any) -> None:
        schema = to_openapi30(schema)
        known = self.schemas.setdefault(name, schema)
        if known != schema:
            raise ValueError(f"two different schemas are named {name!r}: rename a model")

    def schema_of(self, tp: object, mode: str) -> dict[str, Any]:
        """The schema of ``tp``: a ``$ref`` for a model, inline for anything else."""
        adapter: TypeAdapter[Any] = TypeAdapter(cast(Any, tp))
        schema: dict[str, Any] = adapter.json_schema(
            mode=mode,  # type: ignore[arg-type]
            ref_template=REF_TEMPLATE,
        )
        for name, sub in schema.pop("$defs", {}).items():
            self.add(name, sub)
        if isinstance(tp, type) and issubclass(tp, BaseModel) and "$ref" not in schema:
            self.add(tp.__name__, schema)
            return {"$ref": REF_TEMPLATE.format(model=tp.__name__)}
        return to_openapi30(schema)  # type: ignore[no-any-return]


def _parameters(endpoint: AnyEndpoint, components: _Components) -> list[dict[str, Any]]:
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": to_openapi30(adapter.json_schema(mode="validation")),
        }
        for name, adapter in endpoint.path_types.items()
    ]
    schema = endpoint.query.model_json_schema(mode="validation", ref_template=REF_TEMPLATE)
    for name, sub in schema.pop("$defs", {}).items():
        components.add(name, sub)
    required = set(schema.get("required", []))
    for name, raw in schema.get("properties", {}).items():
        prop = to_openapi30(raw)
        # A query string has no null: "absent" is how a client says None.
        prop.pop("nullable", None)
        if prop.get("default", 0) is None:
            del prop["default"]
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if "description" in prop:
            param["description"] = prop["description"]
        params.append(param)
    return params


def _operation(endpoint: AnyEndpoint, components: _Components) -> dict[str, Any]:
    doc = endpoint.description or (endpoint.handler.__doc__ or "").strip()
    op: dict[str, Any] = {"operationId": endpoint.name, "summary": endpoint.summary}
    if doc:
        op["description"] = doc
    if endpoint.tags:
        op["tags"] = list(endpoint.tags)
    params = _parameters(endpoint, components)
    if params:
        op["parameters"] = params
    if endpoint.has_body:
        body_schema = endpoint.body.model_json_schema(mode="validation")
        op["requestBody"] = {
            "required": bool(body_schema.get("required")),
            "content": {
                "application/json": {"schema": components.schema_of(endpoint.body, "validation")}
            },
        }
    responses: dict[int, Reply] = dict(endpoint.responses)
    if endpoint.validates:
        responses.setdefault(422, Reply("The request did not validate", ErrorBody))
    op["responses"] = {}
    for status, reply in sorted(responses.items()):
        out: dict[str, Any] = {"description": reply.description}
        if reply.model is not None:
            out["content"] = {
                "application/json": {"schema": components.schema_of(reply.model, "serialization")}
            }
        op["responses"][str(status)] = out
    return op


def build_spec(
    endpoints: Iterable[AnyEndpoint], *, title: str, version: str, description: str = ""
) -> dict[str, Any]:
    """The OpenAPI 3.0.3 document of ``endpoints``."""
    components = _Components()
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        _, path_format, _ = compile_path(endpoint.path)
        methods = paths.setdefault(path_format, {})
        method = endpoint.method.lower()
        if method in methods:
            raise ValueError(f"{endpoint.method} {path_format} is declared twice")
        methods[method] = _operation(endpoint, components)
    info: dict[str, Any] = {"title": title, "version": version}
    if description:
        info["description"] = description
    return {
        "openapi": "3.0.3",
        "info": info,
        "paths": paths,
        "components": {"schemas": dict(sorted(components.schemas.items()))},
    }


@dataclass(frozen=True)
class Refusal:
    """An error answered in front of the endpoints (by a middleware), with the one
    ``ErrorBody``: ``status`` on every operation ``applies(path, operation)`` accepts.

    ``schemes`` are the security schemes that avoid it: they are declared for the whole
    API, and the operations it does not apply to are marked as needing none."""

    status: int
    description: str
    applies: Callable[[str, Mapping[str, Any]], bool]
    headers: Mapping[str, Any] = field(default_factory=dict)
    schemes: Mapping[str, Any] = field(default_factory=dict)


def describe_refusal(spec: dict[str, Any], refusal: Refusal) -> None:
    """Write ``refusal`` into ``spec`` (a document made by :func:`build_spec`)."""
    reply: dict[str, Any] = {"description": refusal.description}
    if refusal.headers:
        reply["headers"] = dict(refusal.headers)
    reply["content"] = {
        "application/json": {"schema": {"$ref": REF_TEMPLATE.format(model=ErrorBody.__name__)}}
    }
    if refusal.schemes:
        spec["components"]["securitySchemes"] = dict(refusal.schemes)
        spec["security"] = [{name: []} for name in refusal.schemes]
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            if not refusal.applies(path, operation):
                if refusal.schemes:
                    operation["security"] = []
                continue
            responses = operation["responses"]
            responses.setdefault(str(refusal.status), copy.deepcopy(reply))
            operation["responses"] = dict(sorted(responses.items()))
