"""The RSGI layer's own parts: addresses, the X-Forwarded-For list, the body's limit, and ASGI answers written
whole or streamed. (The layer as served is tested by every integration test: `python -m backend` serves it.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from granian.rsgi import ProtocolClosed  # type: ignore[attr-defined]  # (re-exported without __all__)

from backend.app.errors import ApiError
from backend.app.rsgi import _address, _Receive, _Send, asgi_scope, forwarded_for, peer_of, read_body


class FakeHeaders:
    def __init__(self, *pairs: tuple[str, str]) -> None:
        self.pairs = list(pairs)

    def get(self, key: str, default: Any = None) -> Any:
        return next((v for k, v in self.pairs if k == key), default)

    def get_all(self, key: str) -> list[str]:
        return [v for k, v in self.pairs if k == key]

    def items(self) -> list[tuple[str, str]]:
        return list(self.pairs)


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)


class FakeProto:
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks
        self.answers: list[tuple[str, int, list[tuple[str, str]], bytes | None]] = []
        self.stream = FakeTransport()
        self.disconnected = asyncio.Event()

    async def __call__(self) -> bytes:
        return b"".join(self.chunks)

    async def _iterate(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def client_disconnect(self) -> None:
        await self.disconnected.wait()

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.answers.append(("bytes", status, headers, body))

    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> FakeTransport:
        self.answers.append(("stream", status, headers, None))
        return self.stream


def test_addresses_of_v4_and_v6_peers() -> None:
    assert peer_of("127.0.0.1:5000") == "127.0.0.1"
    assert peer_of("[::1]:5000") == "::1"
    assert peer_of("") == "unknown"
    assert _address("10.0.0.1:80") == ("10.0.0.1", 80)
    assert _address("[fe80::1]:443") == ("fe80::1", 443)
    assert _address("nonsense") is None


def test_every_forwarded_for_header_in_order_as_one_list() -> None:
    assert forwarded_for(FakeHeaders()) is None
    assert forwarded_for(FakeHeaders(("x-forwarded-for", "1.1.1.1, 2.2.2.2"))) == "1.1.1.1, 2.2.2.2"
    two = FakeHeaders(("x-forwarded-for", "1.1.1.1"), ("host", "h"), ("x-forwarded-for", "3.3.3.3"))
    assert forwarded_for(two) == "1.1.1.1,3.3.3.3"


def test_a_body_past_the_limit_is_refused_by_its_length_or_as_it_comes() -> None:
    declared = FakeHeaders(("content-length", "20"))
    with pytest.raises(ApiError) as refused:
        asyncio.run(read_body(FakeProto(b"x" * 20), declared, 16))
    assert refused.value.status_code == 413
    with pytest.raises(ApiError):  # a length that is not a number
        asyncio.run(read_body(FakeProto(b"x"), FakeHeaders(("content-length", "-1")), 16))
    chunked = FakeProto(b"x" * 10, b"y" * 10)
    with pytest.raises(ApiError) as refused:
        asyncio.run(read_body(chunked, FakeHeaders(), 16))
    assert refused.value.status_code == 413
    assert asyncio.run(read_body(FakeProto(b"ab", b"cd"), FakeHeaders(), 16)) == b"abcd"
    assert asyncio.run(read_body(FakeProto(b"abcd"), FakeHeaders(("content-length", "4")), 16)) == b"abcd"


def test_an_asgi_answer_is_written_whole_or_streamed() -> None:
    async def answer(proto: FakeProto, *bodies: tuple[bytes, bool]) -> None:
        send = _Send(proto)
        await send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"text/csv")]})
        for body, more in bodies:
            await send({"type": "http.response.body", "body": body, "more_body": more})

    whole = FakeProto()
    asyncio.run(answer(whole, (b"a,b\n", False)))
    assert whole.answers == [("bytes", 201, [("content-type", "text/csv")], b"a,b\n")]
    streamed = FakeProto()
    asyncio.run(answer(streamed, (b"a,b\n", True), (b"1,2\n", True), (b"", False)))
    assert streamed.answers == [("stream", 201, [("content-type", "text/csv")], None)]
    assert streamed.stream.sent == [b"a,b\n", b"1,2\n"]


def test_the_asgi_request_the_bridge_builds() -> None:
    class Scope:
        proto, http_version, method, scheme = "http", "1.1", "GET", "http"
        path, query_string = "/api/a b", "x=1"
        client, server = "127.0.0.1:4000", "127.0.0.1:8000"
        headers = FakeHeaders(("host", "h"), ("x-a", "1"), ("x-a", "2"))

    scope = asgi_scope(Scope(), {"k": 1})
    assert scope["path"] == "/api/a b" and scope["raw_path"] == b"/api/a%20b"
    assert scope["query_string"] == b"x=1"
    assert scope["headers"] == [(b"host", b"h"), (b"x-a", b"1"), (b"x-a", b"2")]
    assert scope["client"] == ("127.0.0.1", 4000) and scope["server"] == ("127.0.0.1", 8000)
    assert scope["state"] == {"k": 1}

    async def receive_twice() -> list[dict[str, Any]]:
        proto = FakeProto()
        receive = _Receive(proto, b"body")
        first = await receive()
        later = asyncio.ensure_future(receive())
        await asyncio.sleep(0.01)
        assert not later.done()  # the disconnect only when it comes
        proto.disconnected.set()
        return [dict(first), dict(await later)]

    first, second = asyncio.run(receive_twice())
    assert first == {"type": "http.request", "body": b"body", "more_body": False}
    assert second == {"type": "http.disconnect"}


def test_a_client_gone_mid_body_is_a_body_not_received() -> None:
    class Gone(FakeProto):
        async def __call__(self) -> bytes:
            raise ProtocolClosed("RSGI transport is closed")

        async def _iterate(self) -> AsyncIterator[bytes]:
            yield b"{"
            raise ProtocolClosed("RSGI transport is closed")

    for headers in (FakeHeaders(("content-length", "9")), FakeHeaders()):
        with pytest.raises(ApiError) as refused:
            asyncio.run(read_body(Gone(), headers, 16))
        assert (refused.value.status_code, refused.value.error_code) == (400, "BAD_REQUEST")
