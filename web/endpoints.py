"""Declarative endpoints: one declaration builds both the Starlette route and its OpenAPI.

An endpoint names its path, method, handler, the pydantic models of its body and query
string, and the model of each response by status.  The routes made by
:func:`build_routes` validate the request against those models before the handler runs
(a refused request reaches no handler, so it changes nothing); :func:`web.spec.build_spec` writes
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
  the parameter's schema in the spec come from that one declaration.  A path whose
  ``int`` segment is not a number (``/devices/abc``, ``/devices/-1``) is a 422 naming the
  parameter too, not a bare 404: after every route, :func:`build_routes` adds one per
  such path that matches any segment there (so it never shadows another route).
- An endpoint without ``body=`` reads no body; with one, an empty body counts as ``{}``
  and a body that is not JSON is a 422 like any other invalid body.
- Query models subclass :class:`QueryModel`; each field becomes one query parameter.
  Unknown query parameters are ignored (a cache-buster such as ``?_=1`` must not break a
  client); unknown body fields are refused.
- Text anywhere in a request (path, query, body, keys included) may not contain NUL
  (``\\u0000``): PostgreSQL cannot store it, so it is a 422 naming the field, not a 500.
- A 422 response (``ErrorBody``) is added to the spec of every endpoint that validates
  something; declare every other status the handler can answer.
- The document is OpenAPI 3.0.3 (the bundled Swagger UI 4 does not render 3.1):
  pydantic's JSON Schema is rewritten where 3.0 differs (``nullable``, ``const``,
  numeric ``exclusiveMinimum``, ``examples``) by :mod:`web.openapi30`.
"""

from __future__ import annotations

import re
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
    register_url_convertor,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route, compile_path

from storage.types import MAX_ID
from web.errors import Issue, RequestInvalid

__all__ = [
    "MAX_PATH_INT",
    "AnyEndpoint",
    "Call",
    "Endpoint",
    "NoBody",
    "NoQuery",
    "QueryModel",
    "Reply",
    "build_routes",
    "respond",
]

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
    """Base of query-string models: unknown parameters are ignored (the WebSocket ignores
    them too), known ones validated."""

    model_config = ConfigDict(extra="ignore")


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

    def route(self, path: str | None = None) -> Route:
        """This endpoint alone as a Starlette route (:func:`build_routes` for an API);
        ``path``: another pattern for the same endpoint (default: its own)."""
        return _path_route(path or self.path, {self.method: self})

    def _check_path(self, request: Request, issues: list[Issue]) -> None:
        params = request.path_params  # the scope's own dict: the handler sees what is set
        for name, adapter in self.path_types.items():
            try:
                params[name] = adapter.validate_python(params[name])
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
    routes = [_path_route(path, methods) for path, methods in by_path.items()]
    # Last, so that they never shadow a route above: the same paths with every ``int``
    # segment matching anything, answered by the same endpoints, whose validation of the
    # segment then refuses it (a 422 naming the parameter, not Starlette's bare 404).
    literal = frozenset(path for path in by_path if "{" not in path)
    for path, methods in by_path.items():
        loose = _loose_int_path(path)
        if loose != path:
            route = _path_route(loose, methods, _LooseRoute, literal=literal)
            route.name = f"{route.name}:invalid"
            routes.append(route)
    return routes


class _LooseRoute(Route):
    """A loose route that never takes a path declared literally (``/devices/validate``):
    a method that path lacks stays Starlette's 405, not this route's 422."""

    def __init__(self, *args: Any, literal: frozenset[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._literal = literal

    def matches(self, scope: Any) -> Any:
        if scope.get("path") in self._literal:
            return Match.NONE, {}
        return super().matches(scope)


class _AnySegmentConvertor(StringConvertor):
    """An ``int`` path segment as the client sent it, for the endpoint to validate."""


_ANY_SEGMENT = "fleetprobe_any_segment"
register_url_convertor(_ANY_SEGMENT, _AnySegmentConvertor())
_INT_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):int\}")


def _loose_int_path(path: str) -> str:
    """``/devices/{device_id:int}`` -> ``/devices/{device_id:<any segment>}`` (pure)."""
    return _INT_PARAM.sub(lambda m: "{" + f"{m.group(1)}:{_ANY_SEGMENT}" + "}", path)


def _path_route(
    path: str,
    methods: Mapping[str, AnyEndpoint],
    route_class: type[Route] = Route,
    **extra: Any,
) -> Route:
    """The route of ``path``, calling the endpoint of each of ``methods`` (``extra``: more
    arguments of ``route_class``)."""
    if len(methods) == 1:
        (endpoint,) = methods.values()
        return route_class(
            path, endpoint.handle, methods=[endpoint.method], name=endpoint.name, **extra
        )

    async def dispatch(request: Request) -> Response:
        # Starlette answers HEAD with the GET endpoint; the route already refused the rest.
        method = "GET" if request.method == "HEAD" else request.method
        return await methods[method].handle(request)

    name = "|".join(endpoint.name for endpoint in methods.values())
    return route_class(path, dispatch, methods=list(methods), name=name, **extra)


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
