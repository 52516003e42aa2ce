"""The API on granian's RSGI interface: the door's two endpoints answered from it directly, every other
request handed to the ASGI app through a bridge.

On granian's ASGI interface every request is framed in Python: a scope dict holding every header as a
pair of bytes objects, `receive` and `send` callables, a dict per message. On the door that framing is a
large share of a request's cost (docs/experiments/ingest.md). RSGI hands the handler its headers as a
mapping kept in Rust (a header is looked up by name, not found by a scan) and takes the answer in one call.
The door's logic stays one (`ParticipationDoor.participate` and `.look_up`); the functions here only read
an RSGI request for it and write its answer, as its ASGI methods do for the ASGI interface.

Everything else (FastAPI's routes, their middleware, the app's lifespan) runs unchanged through the
bridge: an ASGI scope built from the RSGI one, the body read in parts within the size limit and by its
deadline (as the door reads every body), the answer written whole or streamed. Two things RSGI does not
carry: the raw path (rebuilt by quoting the decoded one) and headers whose values are not ASCII (granian
leaves them out; nothing in the API reads one).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol
from urllib.parse import quote

from granian.asgi import LifespanProtocol
from granian.rsgi import ProtocolClosed  # type: ignore[attr-defined]  # (re-exported without __all__)
from starlette.types import Message

from backend.app.errors import ApiError, body_not_received, payload_too_large
from backend.app.observability import request_id_from
from backend.door.handler import (
    LOOKUP_PATH,
    PATH,
    ROUTES,
    WITH_BODY,
    ParticipationDoor,
)

log = logging.getLogger(__name__)

JSON = ("content-type", "application/json")


class Headers(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...
    def get_all(self, key: str) -> list[str]: ...
    def items(self) -> list[tuple[str, str]]: ...


class Scope(Protocol):
    proto: str
    http_version: str
    method: str
    path: str
    query_string: str
    scheme: str
    client: str
    server: str

    @property
    def headers(self) -> Headers: ...


class Transport(Protocol):
    async def send_bytes(self, data: bytes) -> None: ...


class HttpProtocol(Protocol):
    async def __call__(self) -> bytes: ...
    def __aiter__(self) -> AsyncIterator[bytes]: ...
    async def client_disconnect(self) -> None: ...
    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None: ...
    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> Transport: ...


class RsgiApp:
    """The API as an RSGI application (granian calls `__rsgi_init__`, `__rsgi__` per request, `__rsgi_del__`)."""

    def __init__(self, door: ParticipationDoor) -> None:
        self.door = door
        self._lifespan = LifespanProtocol(door.app)  # type: ignore[no-untyped-call]  # (granian's own)

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        """The ASGI app's lifespan started, before the first request (the loop is not running yet)."""
        loop.run_until_complete(self._lifespan.startup())  # type: ignore[no-untyped-call]
        if self._lifespan.interrupt:
            log.error("the API's start-up failed", exc_info=self._lifespan.exc)
            raise SystemExit(1)

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self._lifespan.shutdown())  # type: ignore[no-untyped-call]

    async def __rsgi__(self, scope: Scope, proto: HttpProtocol) -> None:
        door = self.door
        method = scope.method
        if method == "POST":
            match = PATH.fullmatch(scope.path)
            if match is not None and match[2] in door.endpoints:
                await self._participate(scope, proto, match[1], match[2])
                return
        elif method == "GET" and door.serves_lookups:
            match = LOOKUP_PATH.fullmatch(scope.path)
            if match is not None:
                await self._look_up(scope, proto, match[1], match[2])
                return
        await self._bridge(scope, proto)

    async def _participate(self, scope: Scope, proto: HttpProtocol, campaign: str, endpoint: str) -> None:
        started = time.perf_counter()
        door = self.door
        headers = scope.headers
        request_id = request_id_from(headers.get("x-request-id"))
        status, answer, extra = await door.participate(
            endpoint,
            campaign,
            request_id,
            door.clients.of(peer_of(scope.client), forwarded_for(headers)),
            lambda: read_body(proto, headers, door.max_body_bytes),
            headers.get("idempotency-key"),
            headers.get("authorization"),
            headers.get("x-simulated-user"),
        )
        respond(proto, status, answer, request_id, extra)
        door.observe(endpoint, "POST", ROUTES[endpoint], status, started)

    async def _look_up(self, scope: Scope, proto: HttpProtocol, campaign: str, request_id: str) -> None:
        started = time.perf_counter()
        door = self.door
        headers = scope.headers
        trace = request_id_from(headers.get("x-request-id"))
        client = door.clients.of(peer_of(scope.client), forwarded_for(headers))
        status, answer, extra, wait_s = await door.look_up(campaign, request_id, trace, client, scope.query_string)
        respond(proto, status, answer, trace, extra)
        door.observe_look_up(status, started, wait_s)

    async def _bridge(self, scope: Scope, proto: HttpProtocol) -> None:
        """Any other request, served by the ASGI app: its body read first (by the door's deadline and limit)."""
        door = self.door
        headers = scope.headers
        body = b""
        if scope.method in WITH_BODY:
            try:
                client = door.clients.of(peer_of(scope.client), forwarded_for(headers))
                body = await door.read_body(lambda: read_body(proto, headers, door.max_body_bytes), client)
            except ApiError as exc:
                respond(proto, exc.status_code, exc.body(), request_id_from(headers.get("x-request-id")), exc.headers)
                return
        await door.app(asgi_scope(scope, self._lifespan.state), _Receive(proto, body), _Send(proto))


def peer_of(address: str) -> str:
    """The host of an RSGI `client` ("host:port", "[v6]:port")."""
    host = address.rpartition(":")[0]
    return host[1:-1] if host.startswith("[") else host or "unknown"


def _address(address: str) -> tuple[str, int] | None:
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        return None
    return (host[1:-1] if host.startswith("[") else host), int(port)


def forwarded_for(headers: Headers) -> str | None:
    """Every `X-Forwarded-For` header, in order, as one list (as HTTP says); None without one."""
    first = headers.get("x-forwarded-for")
    if first is None:
        return None
    every = headers.get_all("x-forwarded-for")
    return first if len(every) == 1 else ",".join(every)


async def read_body(proto: HttpProtocol, headers: Headers, limit: int) -> bytes:
    """An RSGI request's body, whole; 413 PAYLOAD_TOO_LARGE past `limit` bytes (at once when its
    `Content-Length` says so, else once that many bytes have come)."""
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit() or int(length) > limit:
            raise payload_too_large(limit)
        try:
            return await proto()
        except ProtocolClosed:  # the client went away mid-body
            raise body_not_received() from None
    chunks = []
    size = 0
    try:
        async for chunk in proto:
            size += len(chunk)
            if size > limit:
                raise payload_too_large(limit)
            chunks.append(chunk)
    except ProtocolClosed:
        raise body_not_received() from None
    return b"".join(chunks)


def respond(proto: HttpProtocol, status: int, answer: bytes, request_id: str, extra: dict[str, str] | None) -> None:
    headers = [JSON, ("x-request-id", request_id)]
    if extra:
        headers += [(k.lower(), v) for k, v in extra.items()]
    proto.response_bytes(status, headers, answer)


def asgi_scope(scope: Scope, state: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": scope.http_version,
        "method": scope.method,
        "scheme": scope.scheme,
        "path": scope.path,
        "raw_path": quote(scope.path).encode("ascii"),
        "query_string": scope.query_string.encode("latin-1"),
        "root_path": "",
        "headers": [(name.encode("latin-1"), value.encode("latin-1")) for name, value in scope.headers.items()],
        "client": _address(scope.client),
        "server": _address(scope.server),
        "state": state.copy(),
    }


class _Receive:
    """ASGI `receive` over an RSGI request whose body is read: the body, then the disconnect when it comes."""

    __slots__ = ("body", "proto")

    def __init__(self, proto: HttpProtocol, body: bytes) -> None:
        self.proto = proto
        self.body: bytes | None = body

    async def __call__(self) -> Message:
        body = self.body
        if body is not None:
            self.body = None
            return {"type": "http.request", "body": body, "more_body": False}
        await self.proto.client_disconnect()
        return {"type": "http.disconnect"}


class _Send:
    """ASGI `send` over an RSGI answer: one call for a body sent whole, a stream for one sent in parts."""

    __slots__ = ("headers", "proto", "status", "stream")

    def __init__(self, proto: HttpProtocol) -> None:
        self.proto = proto
        self.status = 500
        self.headers: list[tuple[str, str]] = []
        self.stream: Transport | None = None

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            self.headers = [
                (name.decode("latin-1"), value.decode("latin-1")) for name, value in message.get("headers", ())
            ]
        elif kind == "http.response.body":
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if self.stream is None:
                if not more:
                    self.proto.response_bytes(self.status, self.headers, body)
                    return
                self.stream = self.proto.response_stream(self.status, self.headers)
            if body:
                await self.stream.send_bytes(body)
