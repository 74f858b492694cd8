"""Declarative endpoints: one declaration builds both the Starlette route and its OpenAPI.

An endpoint names its path, method, handler, the pydantic models of its body and query
string, and the model of each response by status.  The routes made by
:func:`build_routes` validate the request against those models before the handler runs
(a refused request reaches no handler, so it changes nothing); :func:`build_spec` writes
the OpenAPI document from the very same models, so the spec cannot drift from the code.
Handlers raise :class:`web.errors.ApiError` for any other refusal.  Example::

    class DeviceQuery(QueryModel):
        is_active: bool | None = None

    async def list_devices(call: Call[NoBody, DeviceQuery]) -> Response:
        rows = ...  # call.query.is_active is a bool or None here
        return respond([DeviceRead.model_validate(r) for r in rows])

    ENDPOINTS: list[AnyEndpoint] = [
        Endpoint("GET", "/devices", list_devices, query=DeviceQuery, tags=("devices",),
                 summary="List devices", responses={200: Reply("Devices", list[DeviceRead])}),
    ]

    routes = build_routes(ENDPOINTS)
    spec = build_spec(ENDPOINTS, title="fleetprobe", version="0.1.0")

Rules the builder follows:

- Path parameters use Starlette's syntax (``/devices/{device_id:int}``); their type and
  bounds come from the convertor (``int`` -> a non-negative 64-bit integer, ``str`` -> no
  ``/``), narrowed by the endpoint's ``path_params`` (``{"task_id": Annotated[str,
  Field(max_length=128)]}``).  Both the validation (a 422 naming ``["path", name]``) and
  the parameter's schema in the spec come from that one declaration.
- An endpoint without ``body=`` reads no body; with one, an empty body counts as ``{}``
  and a body that is not JSON is a 422 like any other invalid body.
- Query models subclass :class:`QueryModel` (unknown parameters are refused); each field
  becomes one query parameter.
- Text anywhere in a request (path, query, body, keys included) may not contain NUL
  (``\\u0000``): PostgreSQL cannot store it, so it is a 422 naming the field, not a 500.
- A 422 response (``ErrorBody``) is added to the spec of every endpoint that validates
  something; declare every other status the handler can answer.
- The document is OpenAPI 3.0.3 (the bundled Swagger UI 4 does not render 3.1):
  pydantic's JSON Schema is rewritten where 3.0 differs (``nullable``, ``const``,
  numeric ``exclusiveMinimum``, ``examples``).
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeAlias, TypeVar, cast, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.convertors import (
    Convertor,
    FloatConvertor,
    IntegerConvertor,
    PathConvertor,
    StringConvertor,
    UUIDConvertor,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, compile_path

from storage.types import MAX_ID
from web.errors import ErrorBody, Issue, RequestInvalid

__all__ = [
    "MAX_PATH_INT",
    "AnyEndpoint",
    "Call",
    "Endpoint",
    "NoBody",
    "NoQuery",
    "QueryModel",
    "Refusal",
    "Reply",
    "build_routes",
    "build_spec",
    "describe_refusal",
    "openapi_route",
    "respond",
]

REF_TEMPLATE = "#/components/schemas/{model}"
# The largest integer a path parameter may carry (SQLite/PostgreSQL BIGINT).
MAX_PATH_INT = MAX_ID
# What a path parameter is, by its Starlette convertor, before an endpoint's own bounds.
_PATH_TYPES: dict[type[Convertor[Any]], object] = {
    IntegerConvertor: Annotated[int, Field(ge=0, le=MAX_PATH_INT)],
    FloatConvertor: Annotated[float, Field(ge=0)],
    UUIDConvertor: uuid.UUID,
    StringConvertor: Annotated[str, Field(pattern="^[^/]+$")],
    PathConvertor: str,
}

B = TypeVar("B", bound=BaseModel)
Q = TypeVar("Q", bound=BaseModel)


class NoBody(BaseModel):
    """The body model of an endpoint that reads no body."""


class QueryModel(BaseModel):
    """Base of query-string models: unknown parameters are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class NoQuery(QueryModel):
    """The query model of an endpoint that takes no query parameters."""


@dataclass(frozen=True, slots=True)
class Call(Generic[B, Q]):
    """What a handler receives: the request and its already validated body and query."""

    request: Request
    body: B
    query: Q

    @property
    def path(self) -> Mapping[str, Any]:
        """Path parameters, converted by their Starlette convertors."""
        return self.request.path_params


Handler: TypeAlias = Callable[[Call[B, Q]], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Reply:
    """One documented response: a description and the type of its JSON body (``None``:
    no body).  ``model`` is a pydantic model or anything pydantic can describe
    (``list[DeviceRead]``)."""

    description: str
    model: object | None = None


@dataclass(frozen=True)
class Endpoint(Generic[B, Q]):
    """One operation.  ``body`` and ``query`` default to "none"; the handler's
    ``Call[B, Q]`` must name the same models."""

    method: str
    path: str
    handler: Handler[B, Q]
    responses: Mapping[int, Reply]
    summary: str
    body: type[B] = NoBody  # type: ignore[assignment]
    query: type[Q] = NoQuery  # type: ignore[assignment]
    tags: tuple[str, ...] = ()
    description: str | None = None  # default: the handler's docstring
    operation_id: str | None = None  # default: the handler's name
    # Bounds of path parameters beyond their convertor's, by name: a ``Field(...)`` or an
    # ``Annotated[T, Field(...)]`` of the convertor's type T.
    path_params: Mapping[str, object] = field(default_factory=dict)
    convertors: dict[str, Convertor[Any]] = field(init=False, repr=False)
    path_types: dict[str, TypeAdapter[Any]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", self.method.upper())
        _, _, convertors = compile_path(self.path)
        unknown = set(self.path_params) - set(convertors)
        if unknown:
            raise ValueError(f"{self.path} has no path parameter {', '.join(sorted(unknown))}")
        types: dict[str, TypeAdapter[Any]] = {
            name: TypeAdapter(cast(Any, _path_type(conv, self.path_params.get(name))))
            for name, conv in convertors.items()
        }
        object.__setattr__(self, "convertors", convertors)
        object.__setattr__(self, "path_types", types)

    @property
    def has_body(self) -> bool:
        return self.body is not NoBody

    @property
    def name(self) -> str:
        return self.operation_id or self.handler.__name__

    @property
    def validates(self) -> bool:
        return self.has_body or bool(self.query.model_fields) or bool(self.convertors)

    async def handle(self, request: Request) -> Response:
        """Validate path parameters, query and body, then call the handler."""
        issues: list[Issue] = _nul_issues(request.path_params, ["path"])
        self._check_path(request, issues)
        query = self._parse_query(request, issues)
        body = await self._parse_body(request, issues) if self.has_body else NoBody()
        if query is not None:
            issues.extend(_nul_issues(query.model_dump(), ["query"]))
        if body is not None:
            issues.extend(_nul_issues(body.model_dump(), ["body"]))
        if issues or query is None or body is None:
            raise RequestInvalid(issues)
        return await self.handler(Call(request, body, query))  # type: ignore[arg-type]

    def route(self) -> Route:
        """This endpoint alone as a Starlette route (:func:`build_routes` for an API)."""
        return Route(self.path, self.handle, methods=[self.method], name=self.name)

    def _check_path(self, request: Request, issues: list[Issue]) -> None:
        for name, adapter in self.path_types.items():
            try:
                adapter.validate_python(request.path_params[name])
            except ValidationError as exc:
                issues.extend(_detail(RequestInvalid.from_validation(exc, "path", name)))

    def _parse_query(self, request: Request, issues: list[Issue]) -> Q | None:
        try:
            return self.query.model_validate(dict(request.query_params))
        except ValidationError as exc:
            issues.extend(_detail(RequestInvalid.from_validation(exc, "query")))
            return None

    async def _parse_body(self, request: Request, issues: list[Issue]) -> BaseModel | None:
        raw = await request.body()
        try:
            return self.body.model_validate_json(raw if raw.strip() else b"{}")
        except ValidationError as exc:
            issues.extend(_detail(RequestInvalid.from_validation(exc, "body")))
            return None


AnyEndpoint: TypeAlias = Endpoint[Any, Any]


def _path_type(convertor: Convertor[Any], bounds: object | None) -> object:
    """The convertor's type (:data:`_PATH_TYPES`, anything for an unknown convertor) with
    ``bounds`` on top."""
    base = _PATH_TYPES.get(type(convertor), Any)
    if bounds is None:
        return base
    if get_origin(bounds) is not Annotated:
        return Annotated[base, bounds]
    declared, *metadata = get_args(bounds)
    plain = get_args(base)[0] if get_origin(base) is Annotated else base
    if declared is not plain:
        raise TypeError(f"bounds of type {declared!r} for a {plain!r} path parameter")
    return Annotated[base, *metadata]


def build_routes(endpoints: Iterable[AnyEndpoint]) -> list[Route]:
    """One Starlette route per path, dispatching on the method, so that a wrong method
    gets a 405 whose ``Allow`` lists every method of the path."""
    by_path: dict[str, dict[str, AnyEndpoint]] = {}
    for endpoint in endpoints:
        methods = by_path.setdefault(endpoint.path, {})
        if endpoint.method in methods:
            raise ValueError(f"{endpoint.method} {endpoint.path} is declared twice")
        methods[endpoint.method] = endpoint
    return [_path_route(path, methods) for path, methods in by_path.items()]


def _path_route(path: str, methods: Mapping[str, AnyEndpoint]) -> Route:
    if len(methods) == 1:
        return next(iter(methods.values())).route()

    async def dispatch(request: Request) -> Response:
        # Starlette answers HEAD with the GET endpoint; the route already refused the rest.
        method = "GET" if request.method == "HEAD" else request.method
        return await methods[method].handle(request)

    name = "|".join(endpoint.name for endpoint in methods.values())
    return Route(path, dispatch, methods=list(methods), name=name)


def _nul_issues(value: Any, loc: list[str | int]) -> list[Issue]:
    """An issue for every string (or key) under ``value`` that holds a NUL character."""
    if isinstance(value, str):
        if "\x00" not in value:
            return []
        return [Issue(loc=loc, msg="must not contain the NUL character \\u0000", type="string_nul")]
    if isinstance(value, Mapping):
        issues = []
        for key, item in value.items():
            where = [*loc, str(key)]
            issues.extend(_nul_issues(str(key), where))
            issues.extend(_nul_issues(item, where))
        return issues
    if isinstance(value, list | tuple):
        return [issue for i, item in enumerate(value) for issue in _nul_issues(item, [*loc, i])]
    return []


def _detail(exc: RequestInvalid) -> list[Issue]:
    return exc.detail if isinstance(exc.detail, list) else []


def respond(
    value: BaseModel | Iterable[BaseModel] | None,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A JSON response from a model or a list of models (``None``: an empty body)."""
    if value is None:
        return Response(status_code=status_code, headers=dict(headers or {}))
    if isinstance(value, BaseModel):
        content: Any = value.model_dump(mode="json")
    else:
        content = [item.model_dump(mode="json") for item in value]
    return JSONResponse(content, status_code=status_code, headers=dict(headers or {}))


def openapi_route(spec: Mapping[str, Any], path: str = "/openapi.json") -> Route:
    body = json.dumps(spec, separators=(",", ":")).encode()

    async def openapi(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return Route(path, openapi, methods=["GET"], include_in_schema=False)


# -- the document ---------------------------------------------------------------------


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


# -- JSON Schema (2020-12, pydantic's) -> OpenAPI 3.0 Schema Object --------------------

_NULL = {"type": "null"}
_SCHEMA_KEYS = ("items", "additionalProperties", "not")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs")


def to_openapi30(schema: Any) -> Any:
    """Rewrite the parts of a JSON Schema that OpenAPI 3.0 spells differently.

    >>> to_openapi30({"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None})
    {'default': None, 'type': 'integer', 'nullable': True}
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
