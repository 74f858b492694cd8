"""One JSON error shape for the whole API: ``{"detail": ...}``.

::

    Exception
     ├── ApiError                 a handler's deliberate answer: status + detail
     │    └── RequestInvalid      422, ``detail`` is a list of issues naming the field
     ├── starlette HTTPException  routing: unknown path (404), wrong method (405)
     └── anything else            a bug: 500, logged with its traceback

``detail`` is a string, except for 422, where it is a list of
``{"loc": ["body", "address"], "msg": "...", "type": "..."}`` (the shape FastAPI clients
already parse).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger(__name__)


class Issue(BaseModel):
    """One reason a request was refused: where (``loc``), what (``msg``), which rule."""

    model_config = ConfigDict(extra="forbid")

    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every error response."""

    model_config = ConfigDict(extra="forbid")

    detail: str | list[Issue]


class ApiError(Exception):
    """Raise from a handler to answer ``status`` with ``{"detail": detail}``."""

    def __init__(
        self, status: int, detail: str | list[Issue], headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})


class RequestInvalid(ApiError):
    """422: the body, query or path did not validate."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__(422, issues)

    @classmethod
    def from_validation(cls, exc: ValidationError, *where: str | int) -> RequestInvalid:
        """Turn a pydantic error into issues located in ``where`` (body, query, path)."""
        issues = [
            Issue(loc=[*where, *err["loc"]], msg=err["msg"], type=err["type"])
            for err in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        return cls(issues)

    @classmethod
    def field(
        cls, loc: Sequence[str | int], msg: str, type_: str = "value_error"
    ) -> RequestInvalid:
        """One issue, for checks that need more than the model (settings, the database)."""
        return cls([Issue(loc=list(loc), msg=msg, type=type_)])


def error_response(
    status: int, detail: str | list[Issue], headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(detail=detail).model_dump(mode="json")
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.detail, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    # Starlette logs the traceback and re-raises after this response went out.
    log.error("unhandled error method=%s path=%s error=%r", request.method, request.url.path, exc)
    return error_response(500, "internal server error")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: _api_error,
    HTTPException: _http_error,
    Exception: _server_error,
}
