"""The response envelope and the API's errors: every answer is `{success, message, errorCode, data}`."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from backend.outages import DATABASE_OUTAGES

log = logging.getLogger(__name__)


def envelope(
    data: Any = None,
    message: str = "OK",
    status_code: int = 200,
    error_code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Render the envelope with orjson (camelCase keys are the caller's job)."""
    body = envelope_bytes(data, message, error_code)
    return Response(body, status_code=status_code, media_type="application/json", headers=headers)


def envelope_bytes(data: Any = None, message: str = "OK", error_code: str | None = None) -> bytes:
    """The envelope as JSON bytes: `{success, message, errorCode, data}`."""
    return orjson.dumps({"success": error_code is None, "message": message, "errorCode": error_code, "data": data})


class ApiError(Exception):
    """An error the caller can act on, with a stable errorCode a program can match."""

    def __init__(
        self, status_code: int, error_code: str, message: str, data: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code
        self.message = message
        self.data = data
        self.headers = headers


def campaign_not_found(campaign_id: int) -> ApiError:
    return ApiError(404, "CAMPAIGN_NOT_FOUND", f"campaign {campaign_id} does not exist")


def wrong_channel(campaign_id: int, mode: str) -> ApiError:
    """I7: a campaign takes part through one door only, so neither path can overtake the other's requests."""
    door = "POST …/participation-sync" if mode == "SYNC" else "POST …/participation"
    return ApiError(409, "WRONG_CHANNEL", f"campaign {campaign_id} takes part through {door} ({mode} mode)")


_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def _describe(errors: list[Any]) -> tuple[str, str, list[dict[str, Any]]]:
    details = []
    code = "VALIDATION_ERROR"
    for err in errors:
        loc = [str(part) for part in err.get("loc", ()) if part != "body"]
        if err.get("type") == "json_invalid":
            code, loc = "INVALID_JSON", []
        details.append({"field": ".".join(loc) or "body", "problem": err.get("msg", "invalid")})
    first = details[0] if details else {"field": "body", "problem": "invalid"}
    message = "request body is not valid JSON" if code == "INVALID_JSON" else f"{first['field']}: {first['problem']}"
    return code, message, details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> Response:
        return envelope(exc.data, exc.message, exc.status_code, exc.error_code, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        code, message, details = _describe(list(exc.errors()))
        return envelope({"errors": details}, message, 400 if code == "INVALID_JSON" else 422, code)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        return envelope(None, str(exc.detail), exc.status_code, code, getattr(exc, "headers", None))

    @app.exception_handler(OperationalError)
    async def database_down(request: Request, exc: OperationalError) -> Response:
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
        DATABASE_OUTAGES.note()
        return envelope(
            None, "the database is unavailable, try again shortly", 503, "DATABASE_UNAVAILABLE", {"Retry-After": "1"}
        )

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> Response:
        log.error("database error on %s %s: %s", request.method, request.url.path, exc.orig)
        return envelope(
            None, "the database could not complete the request", 503, "DATABASE_ERROR", {"Retry-After": "1"}
        )
