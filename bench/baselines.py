"""Baseline servers for the ingest benchmark: what a POST shaped like participation costs without the product.

Each is an ASGI app the benchmark serves exactly like the product (same server, same processes):

- `bare_fastapi`: a FastAPI app with one route shaped like participation (pydantic body, envelope
  reply), no I/O — the cost of the framework alone;
- `plain`: a plain ASGI callable that reads the body, parses it and answers 202 JSON, no I/O — the
  cost of the server alone;
- `durable`: the plain callable that also produces the request to Kafka (`acks=all`, idempotent,
  the product's producer settings) and answers 202 only after the delivery report — the ceiling
  for the product's participation endpoint, which does the same plus validation, signing, limits
  and metrics.

The topic comes from `KAFKA_TOPIC`, the broker and client settings from the usual settings.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from backend.door.producer import AsyncProducer, KafkaUnavailable
from fcfs.kafka import producer_config
from fcfs.settings import get_settings

HEADERS = [(b"content-type", b"application/json")]


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(send: Send, status: int, doc: dict[str, Any]) -> None:
    body = orjson.dumps(doc)
    await send(
        {"type": "http.response.start", "status": status, "headers": [*HEADERS, (b"content-length", b"%d" % len(body))]}
    )
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send, startup: Any = None) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if startup is not None:
                startup()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def plain(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["method"] != "POST":  # e.g. the benchmark's "is it up?" probe
        await _answer(send, 404, {"success": False, "message": "not found", "errorCode": "NOT_FOUND"})
        return
    doc = orjson.loads(await _body(receive))
    await _answer(send, 202, {"success": True, "message": "accepted", "errorCode": None, "data": doc})


class Durable:
    """The plain callable plus a durable produce: 202 only after Kafka's acknowledgement."""

    def __init__(self) -> None:
        self.producer: AsyncProducer | None = None
        self.topic = os.environ.get("KAFKA_TOPIC", "campaign-participation-topic")

    def _start(self) -> None:
        settings = get_settings()
        self.producer = AsyncProducer(producer_config(settings), settings.kafka_produce_timeout_ms / 1000)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, self._start)
            return
        if scope["method"] != "POST":
            await plain(scope, receive, send)
            return
        raw = await _body(receive)
        doc = orjson.loads(raw)
        assert self.producer is not None
        try:
            await self.producer.send(self.topic, b"1", raw)
        except KafkaUnavailable:
            await _answer(send, 503, {"success": False, "message": "unavailable", "errorCode": "KAFKA_UNAVAILABLE"})
            return
        await _answer(send, 202, {"success": True, "message": "accepted", "errorCode": None, "data": doc})


durable = Durable()


class Participation(BaseModel):
    userId: int


bare_fastapi = FastAPI()


@bare_fastapi.post("/api/campaigns/{campaign_id}/participation", status_code=202)
async def participate(campaign_id: int, body: Participation) -> Response:
    doc = {
        "success": True,
        "message": "accepted",
        "errorCode": None,
        "data": {"campaignId": campaign_id, "userId": body.userId},
    }
    return Response(orjson.dumps(doc), status_code=202, media_type="application/json")
