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

from backend.app.outages import DATABASE_OUTAGES

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


# The catalogue: every error code the API answers, with its HTTP status. A code is built only by the functions
# below (a test reads the code for any other), so a client can match on it and the docs list each one.
CODES: dict[str, int] = {
    "BAD_REQUEST": 400,
    "INVALID_JSON": 400,
    "INVALID_DATE": 400,
    "DATE_OUT_OF_RANGE": 400,
    "DATE_IN_FUTURE": 400,
    "INVALID_DATE_RANGE": 400,
    "MISSING_DATE": 400,
    "DATE_RANGE_TOO_LONG": 400,
    "BAD_CURSOR": 400,
    "UNAUTHORIZED": 401,
    "UNAUTHENTICATED": 401,
    "USER_MISMATCH": 403,
    "NOT_YOUR_REQUEST": 403,
    "NOT_FOUND": 404,
    "CAMPAIGN_NOT_FOUND": 404,
    "REQUEST_NOT_FOUND": 404,
    "JOB_NOT_FOUND": 404,
    "DEAD_LETTER_NOT_FOUND": 404,
    "CROWD_RUN_NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "REQUEST_TIMEOUT": 408,
    "CAMPAIGN_NOT_STARTED": 409,
    "CAMPAIGN_ENDED": 409,
    "CAMPAIGN_PAUSED": 409,
    "WRONG_CHANNEL": 409,
    "NOT_A_WINNER": 409,
    "CLAIM_EXPIRED": 409,
    "CLAIM_NOT_NEEDED": 409,
    "BATCH_ALREADY_RUNNING": 409,
    "CROWD_RUNNING": 409,
    "CROWD_NOT_RUNNING": 409,
    "CROWD_TARGET_NOT_LOCAL": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "VALIDATION_ERROR": 422,
    "RATE_LIMITED": 429,
    "TOO_MANY_WAITING": 429,
    "BATCH_QUEUE_FULL": 429,
    "INTERNAL_ERROR": 500,
    "KAFKA_UNAVAILABLE": 503,
    "DATABASE_UNAVAILABLE": 503,
    "DATABASE_ERROR": 503,
    "NOT_READY": 503,
    "WAITING_FULL": 503,
    "LOOKUPS_BUSY": 503,
    "CROWD_NOT_STARTED": 503,
}
RETRY = {"Retry-After": "1"}
BEARER = {"WWW-Authenticate": "Bearer"}


class ApiError(Exception):
    """An error the caller can act on, with a stable errorCode of the catalogue (its status comes with it)."""

    def __init__(self, error_code: str, message: str, data: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status_code = CODES[error_code]
        self.error_code = error_code
        self.message = message
        self.data = data
        self.headers = headers

    def body(self) -> bytes:
        return envelope_bytes(self.data, self.message, self.error_code)

    def response(self) -> Response:
        return envelope(self.data, self.message, self.status_code, self.error_code, self.headers)


def invalid(field: str, problem: str) -> ApiError:
    """422 VALIDATION_ERROR: `data.errors` lists the field and its problem, as for every other refusal of input."""
    return ApiError("VALIDATION_ERROR", f"{field}: {problem}", data={"errors": [{"field": field, "problem": problem}]})


def invalid_json() -> ApiError:
    return ApiError("INVALID_JSON", "request body is not valid JSON", data={"errors": []})


def body_not_received() -> ApiError:
    return ApiError("BAD_REQUEST", "the request body was not received")


def payload_too_large(limit: int) -> ApiError:
    return ApiError("PAYLOAD_TOO_LARGE", f"request body larger than {limit} bytes")


def body_timed_out(seconds: float) -> ApiError:
    return ApiError(
        "REQUEST_TIMEOUT", f"the request body did not arrive within {seconds:g} s", headers={"Connection": "close"}
    )


def too_many_pending_bodies(limit: int) -> ApiError:
    return ApiError(
        "RATE_LIMITED",
        f"this client already has {limit} requests whose body is slow to arrive; finish those first",
        headers={**RETRY, "Connection": "close"},
    )


def rate_limited(kind: str, wait_s: int) -> ApiError:
    return ApiError(
        "RATE_LIMITED",
        f"too many participation requests from this {kind}, slow down",
        headers={"Retry-After": str(wait_s)},
    )


def too_many_waiting(limit: int) -> ApiError:
    return ApiError(
        "TOO_MANY_WAITING",
        f"this client already waits for {limit} outcomes at once; wait for those, or look up without waitSeconds",
        headers=RETRY,
    )


def waiting_full(limit: int) -> ApiError:
    return ApiError(
        "WAITING_FULL",
        f"this server process already holds {limit} waiting look-ups; look up without waitSeconds, or retry",
        headers=RETRY,
    )


def lookups_busy(limit: int) -> ApiError:
    return ApiError(
        "LOOKUPS_BUSY",
        f"this server process already has {limit} look-ups waiting for the database; retry, or look up with the "
        "ticket (partition and offset), which needs no database read",
        headers=RETRY,
    )


def unauthorized(what: str = "admin token") -> ApiError:
    return ApiError("UNAUTHORIZED", f"{what} missing or wrong", headers=BEARER)


def unauthenticated() -> ApiError:
    """401 for a participation without a valid token, whatever is wrong with it (the debug log says what)."""
    return ApiError("UNAUTHENTICATED", "a valid bearer token is required", headers=BEARER)


def user_mismatch() -> ApiError:
    return ApiError("USER_MISMATCH", "userId is not the user of the token")


def internal_error() -> ApiError:
    return ApiError("INTERNAL_ERROR", "internal error")


def not_ready(checks: dict[str, Any]) -> ApiError:
    return ApiError("NOT_READY", "not ready", data={"status": "DOWN", "checks": checks})


def database_unavailable() -> ApiError:
    return ApiError("DATABASE_UNAVAILABLE", "the database is unavailable, try again shortly", headers=RETRY)


def database_error() -> ApiError:
    return ApiError("DATABASE_ERROR", "the database could not complete the request", headers=RETRY)


def kafka_unavailable(message: str, data: Any = None) -> ApiError:
    return ApiError("KAFKA_UNAVAILABLE", message, data=data, headers=RETRY)


def campaign_not_found(campaign_id: int) -> ApiError:
    return ApiError("CAMPAIGN_NOT_FOUND", f"campaign {campaign_id} does not exist")


def request_not_found() -> ApiError:
    return ApiError("REQUEST_NOT_FOUND", "no such participation request for this campaign")


def job_not_found(job_id: int) -> ApiError:
    return ApiError("JOB_NOT_FOUND", f"no job execution {job_id}")


def dead_letter_not_found(where: str) -> ApiError:
    return ApiError("DEAD_LETTER_NOT_FOUND", f"no dead letter at {where}")


def crowd_run_not_found(run_id: int) -> ApiError:
    return ApiError("CROWD_RUN_NOT_FOUND", f"crowd run {run_id} not found")


def bad_cursor(problem: str) -> ApiError:
    return ApiError("BAD_CURSOR", f"cursor: {problem}")


def campaign_not_started(campaign_id: int) -> ApiError:
    return ApiError("CAMPAIGN_NOT_STARTED", f"campaign {campaign_id} has not started yet")


def campaign_ended(campaign_id: int) -> ApiError:
    return ApiError("CAMPAIGN_ENDED", f"campaign {campaign_id} has ended")


PAUSED_RETRY_S = 5  # what a paused campaign's door tells a participant to wait before asking again


def campaign_paused(campaign_id: int) -> ApiError:
    """An operator paused the campaign: nothing is taken (or enqueued) until they resume it."""
    return ApiError(
        "CAMPAIGN_PAUSED",
        f"campaign {campaign_id} is paused by its operators; try again shortly",
        headers={"Retry-After": str(PAUSED_RETRY_S)},
    )


def not_your_request(request_id: str) -> ApiError:
    """A claim of another user's request: only the user who took part may claim their win."""
    return ApiError("NOT_YOUR_REQUEST", f"request {request_id} is another user's")


CLAIM_REFUSALS = {
    "NOT_A_WINNER": "request {} is not a win (status {}): nothing to claim",
    "CLAIM_EXPIRED": "the win of request {} was not claimed in time (status {}): it went to the next in line",
    "CLAIM_NOT_NEEDED": "request {} won (status {}) in a campaign whose winners need not claim",
}


def claim_refused(code: str, request_id: str, status: str) -> ApiError:
    return ApiError(code, CLAIM_REFUSALS[code].format(request_id, status), data={"status": status})


def wrong_channel(campaign_id: int, mode: str) -> ApiError:
    """I7: a campaign takes part through one door only, so neither path can overtake the other's requests."""
    door = "POST …/participation-sync" if mode == "SYNC" else "POST …/participation"
    return ApiError("WRONG_CHANNEL", f"campaign {campaign_id} takes part through {door} ({mode} mode)")


def batch_already_running(message: str, data: Any = None) -> ApiError:
    return ApiError("BATCH_ALREADY_RUNNING", message, data=data)


def batch_queue_full(runs: int) -> ApiError:
    return ApiError(
        "BATCH_QUEUE_FULL",
        f"{runs} aggregations are already running or waiting in this process; retry when one ends",
        headers={"Retry-After": "5"},
    )


def crowd_running(message: str) -> ApiError:
    return ApiError("CROWD_RUNNING", message)


def crowd_not_running(run_id: int, status: str) -> ApiError:
    return ApiError("CROWD_NOT_RUNNING", f"crowd run {run_id} is {status}")


def crowd_target_not_local(target: str) -> ApiError:
    return ApiError("CROWD_TARGET_NOT_LOCAL", f"{target} is not this machine; set CROWD_ALLOW_REMOTE=true to allow it")


def crowd_not_started() -> ApiError:
    return ApiError("CROWD_NOT_STARTED", "could not start the crowd's process")


def date_error(error_code: str, message: str) -> ApiError:
    """400 for a date or period parameter (`INVALID_DATE`, `DATE_OUT_OF_RANGE`, `DATE_IN_FUTURE`,
    `INVALID_DATE_RANGE`, `MISSING_DATE`, `DATE_RANGE_TOO_LONG`)."""
    if not error_code.startswith(("INVALID_DATE", "DATE_", "MISSING_DATE")):
        raise ValueError(f"{error_code} is not a date error")
    return ApiError(error_code, message)


# what a Starlette HTTPException of these statuses answers (an unknown path, method or media type)
_HTTP_CODES = {
    CODES[code]: code
    for code in (
        "BAD_REQUEST",
        "UNAUTHORIZED",
        "NOT_FOUND",
        "METHOD_NOT_ALLOWED",
        "PAYLOAD_TOO_LARGE",
        "UNSUPPORTED_MEDIA_TYPE",
    )
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
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        code, message, details = _describe(list(exc.errors()))
        return ApiError(code, message, data={"errors": details}).response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        return envelope(None, str(exc.detail), exc.status_code, code, getattr(exc, "headers", None))

    @app.exception_handler(OperationalError)
    async def on_database_down(request: Request, exc: OperationalError) -> Response:
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
        DATABASE_OUTAGES.note()
        return database_unavailable().response()

    @app.exception_handler(DBAPIError)
    async def on_database_error(request: Request, exc: DBAPIError) -> Response:
        log.error("database error on %s %s: %s", request.method, request.url.path, exc.orig)
        return database_error().response()
