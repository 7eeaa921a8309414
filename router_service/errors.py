"""Failures -> OpenAI error envelopes ``{"error": {"message", "type", "param", "code"}}``.

``ApiError`` is raised anywhere on the request path; ``install_error_handlers`` turns it,
FastAPI's own validation errors, unknown routes and any unexpected exception into a JSON
envelope with the right status, so a client never sees a bare 500 or an HTML page."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

log = logging.getLogger("router_service")

# Status -> OpenAI error ``type`` (the SDK maps classes by status; the type is informative).
_TYPE_BY_STATUS: dict[int, str] = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error_type_for(status: int) -> str:
    return _TYPE_BY_STATUS.get(status, "server_error" if status >= 500 else "invalid_request_error")


class ApiError(Exception):
    """An error the client should see, with its HTTP status and envelope fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or error_type_for(status)
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        return error_envelope(self.message, self.type, self.param, self.code)


def error_envelope(
    message: str, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_response(err: ApiError, headers: dict[str, str] | None = None) -> Response:
    merged = {**err.headers, **(headers or {})}
    return Response(
        orjson.dumps(err.envelope()),
        status_code=err.status,
        media_type="application/json",
        headers=merged,
    )


def sse_error_event(message: str, type: str = "server_error", code: str | None = None) -> bytes:
    """An error inside an SSE stream, in OpenAI's shape (the SDK raises ``APIError`` on it)."""
    return b"data: " + orjson.dumps(error_envelope(message, type, None, code)) + b"\n\n"


def _loc_to_param(loc: tuple[Any, ...] | list[Any]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body",)]
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out += f"[{p}]" if p.isdigit() else f".{p}"
    return out


def validation_error(errors: list[Any], status: int = 400) -> ApiError:
    """Pydantic ``errors()`` -> one ``ApiError`` naming the first bad field."""
    if not errors:
        return ApiError(status, "Invalid request body.", code="invalid_request")
    first = errors[0]
    param = _loc_to_param(first.get("loc", ()))
    msg = first.get("msg", "invalid value")
    where = f" at '{param}'" if param else ""
    more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
    return ApiError(
        status, f"Invalid request{where}: {msg}{more}", param=param, code="invalid_value"
    )


def install_error_handlers(app: FastAPI) -> None:
    """Every failure leaves the app as an envelope."""

    async def api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc)

    async def fastapi_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(validation_error(list(exc.errors()), status=422))

    async def http_exception(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if status == 404:
            message = "Unknown route. Available: POST /v1/chat/completions, POST /v1/responses, "
            message += "POST /v1/messages, POST /v1/completions, POST /v1/classify, "
            message += "GET /v1/models, GET /health, GET /metrics, GET /v1/metrics, "
            message += "GET /dashboard."
        code = {404: "not_found", 405: "method_not_allowed"}.get(status)
        return error_response(ApiError(status, message, code=code), headers=dict(exc.headers or {}))

    async def unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error: %s", exc)
        err = ApiError(500, f"Internal router error: {type(exc).__name__}", code="internal_error")
        return error_response(err)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, fastapi_validation)
    app.add_exception_handler(StarletteHTTPException, http_exception)
    app.add_exception_handler(Exception, unexpected)
