"""The participation door: `POST /api/campaigns/{id}/participation` served in front of the FastAPI app.

Every request's body, the door's and every other route's, is read here: by its deadline (408, the
connection closed) and within the size limit (413), then handed whole to the route.

The hot path is the one endpoint a crowd hits at once, so it is served outside the framework, skipping
its per-request machinery (routing, dependency solving, model building, middleware wrappers) — measured
in docs/experiments/ingest.md. Its logic is `participate` and `look_up`, whatever the server interface:
this class is also its ASGI layer (an ASGI app in front of FastAPI's), and `backend.app.rsgi` its RSGI
layer, which `python -m backend` serves. It keeps everything the framework
path does: the body limit (413) and deadline (408), the same validation and error envelope and codes, the rate limit,
the campaign window, `X-Request-ID`, the request-duration metric and logs carrying the request id.
Every other request goes to the FastAPI app, which also declares this route for the OpenAPI document.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from prometheus_client.metrics import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.app.errors import (
    ApiError,
    body_not_received,
    body_timed_out,
    envelope_bytes,
    internal_error,
    invalid,
    invalid_json,
    payload_too_large,
)
from backend.app.observability import BATCHED, HTTP_SECONDS, REQUEST_ID, request_id_from, request_id_of
from backend.door.body_deadline import BodyDeadlines
from backend.door.intake import Intake, identify
from backend.door.lookup import MAX_WAIT_S, Lookups
from fcfs.clients import ClientAddresses
from fcfs.events import MAX_CAMPAIGN_ID, MAX_USER_ID

log = logging.getLogger(__name__)

PATH = re.compile(r"/api/campaigns/([^/]*)/(participation|participation-noop)")
LOOKUP_PATH = re.compile(r"/api/campaigns/([^/]*)/participation/([^/]*)")
LOOKUP_ROUTE = "/api/campaigns/{campaignId}/participation/{requestId}"
ROUTES = {
    "participation": "/api/campaigns/{campaignId}/participation",
    "participation-noop": "/api/campaigns/{campaignId}/participation-noop",
}
ACCEPTED_MESSAGE = {
    "participation": "participation request accepted",
    "participation-noop": "participation request accepted (not queued: benchmark baseline)",
}
JSON = (b"content-type", b"application/json")
WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ParticipationDoor:
    """An ASGI app: the participation endpoints itself, everything else by the wrapped app."""

    def __init__(
        self,
        app: ASGIApp,
        intake: Intake | None = None,
        *,
        max_body_bytes: int,
        noop: bool,
        clients: ClientAddresses,
        bodies: BodyDeadlines,
        serves: bool = True,
    ) -> None:
        self.app = app
        self.intake = intake  # set at start-up, once the producer exists
        self.lookups: Lookups | None = None  # set at start-up, once the decision feed exists
        self.max_body_bytes = max_body_bytes
        self.clients = clients
        self.bodies = bodies
        self.endpoints = (set(ROUTES) if noop else {"participation"}) if serves else set()
        self.serves_lookups = serves
        self._timers: dict[tuple[str, int], Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = PATH.fullmatch(scope["path"])
            if match is not None and match[2] in self.endpoints:
                await self._serve(scope, receive, send, match[1], match[2])
                return
        if scope["type"] == "http" and scope["method"] == "GET" and self.serves_lookups:
            match = LOOKUP_PATH.fullmatch(scope["path"])
            if match is not None:
                await self._look_up(scope, send, match[1], match[2])
                return
        if scope["type"] == "http" and scope["method"] in WITH_BODY:
            await self._forward_with_body(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _forward_with_body(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Every other route's body, read here by the same deadline and limit as the door's (408, 413), then
        handed to the app whole."""
        try:
            for name, value in scope["headers"]:
                if name == b"content-length" and (not value.isdigit() or int(value) > self.max_body_bytes):
                    raise payload_too_large(self.max_body_bytes)
            forwarded = [value for name, value in scope["headers"] if name == b"x-forwarded-for"]
            peer = scope["client"][0] if scope.get("client") else "unknown"
            client = self.clients.of(peer, b",".join(forwarded))
            body = await self.read_body(lambda: read_whole(receive, self.max_body_bytes), client)
        except ApiError as exc:
            answer = exc.body()
            await self._answer(send, exc.status_code, answer, request_id_of(scope["headers"]), exc.headers)
            return
        handed = False

        async def whole_body() -> Message:
            nonlocal handed
            if handed:
                return await receive()  # after the body: the disconnect
            handed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, whole_body, send)

    @staticmethod
    async def _answer(send: Send, status: int, answer: bytes, request_id: str, extra: dict[str, str] | None) -> None:
        headers = [JSON, (b"content-length", b"%d" % len(answer)), (b"x-request-id", request_id.encode())]
        if extra:
            headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    async def _serve(self, scope: Scope, receive: Receive, send: Send, campaign: str, endpoint: str) -> None:
        """The door on the ASGI interface: the request's headers picked out of the scope's list."""
        started = time.perf_counter()
        key = authorization = forwarded_for = simulated = trace = None
        for name, value in scope["headers"]:
            if name == b"idempotency-key":
                key = value
            elif name == b"authorization":
                authorization = value
            elif name == b"x-simulated-user":
                simulated = value
            elif name == b"x-request-id":
                trace = value
            elif name == b"x-forwarded-for":  # several headers: one list, in order (as HTTP says)
                forwarded_for = value if forwarded_for is None else forwarded_for + b"," + value
        request_id = request_id_from(None if trace is None else trace.decode("latin-1"))
        peer = scope["client"][0] if scope.get("client") else "unknown"
        status, answer, extra = await self.participate(
            endpoint,
            campaign,
            request_id,
            self.clients.of(peer, forwarded_for),
            lambda: read_whole(receive, self.max_body_bytes),
            key,
            authorization,
            simulated,
        )
        await self._answer(send, status, answer, request_id, extra)
        self.observe(endpoint, "POST", ROUTES[endpoint], status, started)

    async def participate(
        self,
        endpoint: str,
        campaign: str,
        request_id: str,
        client: str,
        read: Callable[[], Awaitable[bytes]],
        key: bytes | str | None,
        authorization: bytes | str | None,
        simulated: bytes | str | None,
    ) -> tuple[int, bytes, dict[str, str] | None]:
        """One participation, start to end, in one coroutine (every extra layer costs on this path), whatever
        the server interface: its status, body and extra headers. `read` reads the body."""
        try:
            intake = self.intake
            assert intake is not None, "the door serves only after start-up"
            body = await self.read_body(read, client)
            campaign_id = parse_campaign_id(campaign)
            given = parse_user_id(body, required=intake.tokens is None)
            user_id = identify(intake.tokens, authorization, given, intake.proofs, simulated)
            publish = endpoint == "participation"
            data = await intake.accept(campaign_id, user_id, client, publish, parse_idempotency_key(key))
            return 202, envelope_bytes(data, ACCEPTED_MESSAGE[endpoint]), None
        except ApiError as exc:
            return exc.status_code, exc.body(), exc.headers
        except Exception:  # noqa: BLE001 - logged with its traceback by unhandled()
            return 500, unhandled(request_id, "POST", ROUTES[endpoint]), None

    def observe(self, kind: str, method: str, route: str, status: int, started: float) -> None:
        """The request's duration into its histogram (the label set looked up once per kind and status)."""
        timer = self._timers.get((kind, status))
        if timer is None:
            timer = self._timers[kind, status] = HTTP_SECONDS.labels(method, route, str(status))
        BATCHED.observe(timer, time.perf_counter() - started)

    async def _look_up(self, scope: Scope, send: Send, campaign: str, request_id: str) -> None:
        """The look-up on the ASGI interface."""
        started = time.perf_counter()
        trace = request_id_of(scope["headers"])
        forwarded = [value for name, value in scope["headers"] if name == b"x-forwarded-for"]
        client = self.clients.of(scope["client"][0] if scope.get("client") else "unknown", b",".join(forwarded))
        query = scope["query_string"].decode("latin-1")
        status, answer, extra, wait_s = await self.look_up(campaign, request_id, trace, client, query)
        await self._answer(send, status, answer, trace, extra)
        self.observe_look_up(status, started, wait_s)

    async def look_up(
        self, campaign: str, request_id: str, trace: str, client: str, query: str
    ) -> tuple[int, bytes, dict[str, str] | None, float]:
        """The look-up, held until the decision with `waitSeconds`, answered from the decision feed: its status,
        body, extra headers and how long it was allowed to wait."""
        wait_s = 0.0
        try:
            lookups = self.lookups
            assert lookups is not None, "the door serves only after start-up"
            campaign_id = parse_campaign_id(campaign)
            if len(request_id) > 64:
                raise invalid("requestId", "String should have at most 64 characters")
            partition, offset, wait_s = parse_lookup_query(query)
            data = await lookups.look_up(
                campaign_id, request_id, client=client, partition=partition, offset=offset, wait_s=wait_s
            )
            return 200, envelope_bytes(data), None, wait_s
        except ApiError as exc:
            return exc.status_code, exc.body(), exc.headers, wait_s
        except Exception:  # noqa: BLE001 - logged with its traceback by unhandled()
            return 500, unhandled(trace, "GET", LOOKUP_ROUTE), None, wait_s

    def observe_look_up(self, status: int, started: float, wait_s: float) -> None:
        if wait_s:  # a held look-up's time is mostly its wait: counted apart
            self.observe("held", "GET", LOOKUP_ROUTE + "?waitSeconds", status, started)
        else:
            self.observe("lookup", "GET", LOOKUP_ROUTE, status, started)

    async def read_body(self, read: Callable[[], Awaitable[bytes]], client: str) -> bytes:
        """The request's body, by its deadline (408 past it); `read` keeps to the size limit (413)."""
        registered = self.bodies.begin(client)
        try:
            return await read()
        except asyncio.CancelledError:
            if self.bodies.expired(registered):
                raise body_timed_out(self.bodies.seconds) from None
            raise
        finally:
            self.bodies.end(registered)


def unhandled(request_id: str, method: str, route: str) -> bytes:
    """A 500's body; the error logged with its traceback, under the request's id."""
    token = REQUEST_ID.set(request_id)
    log.exception("unhandled error on %s %s", method, route)
    REQUEST_ID.reset(token)
    return internal_error().body()


async def read_whole(receive: Receive, limit: int) -> bytes:
    """An ASGI request's body, whole; 413 PAYLOAD_TOO_LARGE past `limit` bytes."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if message.get("more_body", False) or len(body) > limit:
        body = await read_rest(receive, body, limit)
    return body


async def read_rest(receive: Receive, first: bytes, limit: int) -> bytes:
    """The rest of a body sent in several parts; 413 PAYLOAD_TOO_LARGE past `limit` bytes."""
    chunks = [first]
    size = len(first)
    while True:
        if size > limit:
            raise payload_too_large(limit)
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            raise body_not_received()
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            if size > limit:
                raise payload_too_large(limit)
            return b"".join(chunks)


IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,64}")  # 1 to 64 visible ASCII characters
IDEMPOTENCY_KEY_PROBLEM = "must be 1 to 64 visible ASCII characters"


def parse_idempotency_key(value: bytes | str | None) -> str | None:
    """The `Idempotency-Key` header's value, None without one; 422 for a malformed one."""
    if value is None:
        return None
    key = value.decode("latin-1") if isinstance(value, bytes) else value
    if IDEMPOTENCY_KEY.fullmatch(key) is None:
        raise invalid("Idempotency-Key", IDEMPOTENCY_KEY_PROBLEM)
    return key


def parse_campaign_id(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or not 1 <= int(text) <= MAX_CAMPAIGN_ID:
        raise invalid("campaignId", f"Input should be an integer from 1 to {MAX_CAMPAIGN_ID}")
    return int(text)


def parse_lookup_query(query: str) -> tuple[int | None, int | None, float]:
    """(`partition`, `offset`, `waitSeconds`) of a look-up's query string (the last of a repeated one)."""
    params = dict(parse_qsl(query, keep_blank_values=True))
    partition = _whole(params, "partition", 100_000)
    offset = _whole(params, "offset", 2**63 - 1)
    wait = params.get("waitSeconds")
    wait_s = 0.0
    if wait is not None:
        try:
            wait_s = float(wait)
        except ValueError:
            raise invalid("waitSeconds", "Input should be a valid number") from None
        if not 0 <= wait_s <= MAX_WAIT_S:  # (NaN fails too)
            raise invalid("waitSeconds", f"Input should be from 0 to {MAX_WAIT_S:g}")
    return partition, offset, wait_s


def _whole(params: dict[str, str], name: str, most: int) -> int | None:
    text = params.get(name)
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > most:
        raise invalid(name, f"Input should be an integer from 0 to {most}")
    return int(text)


def parse_user_id(body: bytes, required: bool = True) -> int | None:
    """The `userId` of a body `{"userId": <integer from 1 to 2^53 - 1>}`, nothing else in it; when not
    `required` (the user comes from a token), the body may be `{}` or empty."""
    if not body:
        if not required:
            return None
        raise invalid("body", "Field required")
    try:
        doc: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise invalid_json() from None
    if type(doc) is not dict:
        raise invalid("body", "Input should be an object")
    if "userId" not in doc:
        if required:
            raise invalid("userId", "Field required")
        if doc:
            raise invalid(next(iter(doc)), "Extra inputs are not permitted")
        return None
    if len(doc) > 1:
        raise invalid(next(k for k in doc if k != "userId"), "Extra inputs are not permitted")
    user_id = doc["userId"]
    if type(user_id) is not int:
        raise invalid("userId", "Input should be a valid integer")
    if not 1 <= user_id <= MAX_USER_ID:
        raise invalid("userId", f"Input should be an integer from 1 to {MAX_USER_ID}")
    return user_id
