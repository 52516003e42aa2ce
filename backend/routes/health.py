"""Liveness and readiness: is the process up; can it reach the database and Kafka."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from backend.app.deps import EngineDep, ProducerDep
from backend.app.errors import envelope, not_ready
from backend.contract.responses import Health, errors, ok
from backend.door.producer import AsyncProducer
from fcfs.db import ping

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", summary="The process answers", responses=ok(200, Health))
async def live() -> Response:
    return envelope({"status": "UP"})


@router.get(
    "/ready",
    summary="The database and Kafka are reachable (503 otherwise)",
    responses={**ok(200, Health), **errors(_503="NOT_READY: data.checks says which is DOWN")},
)
async def ready(request: Request, engine: EngineDep, producer: ProducerDep) -> Response:
    """At most one check of each dependency a second per process, however many ask (a flood of this public
    call would otherwise be a flood of database and Kafka metadata calls)."""
    state = request.app.state
    checked: Readiness | None = getattr(state, "readiness", None)
    if checked is None:
        checked = state.readiness = Readiness(engine, producer)
    checks = await checked.checks()
    if all(v == "UP" for v in checks.values()):
        return envelope({"status": "UP", "checks": checks})
    return not_ready(checks).response()


class Readiness:
    """The dependencies' last check, reused for `MAX_AGE_S`; callers meanwhile share the check in flight."""

    MAX_AGE_S = 1.0

    def __init__(self, engine: Engine, producer: AsyncProducer) -> None:
        self._engine = engine
        self._producer = producer
        self._last: tuple[float, dict[str, str]] | None = None
        self._running: asyncio.Future[dict[str, str]] | None = None

    async def checks(self) -> dict[str, str]:
        if self._last is not None and time.monotonic() - self._last[0] < self.MAX_AGE_S:
            return self._last[1]
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._check())
        return await asyncio.shield(self._running)

    async def _check(self) -> dict[str, str]:
        db_ok, kafka_ok = await asyncio.gather(
            run_in_threadpool(self._database_ok), run_in_threadpool(self._producer.reachable)
        )
        checks = {"database": "UP" if db_ok else "DOWN", "kafka": "UP" if kafka_ok else "DOWN"}
        self._last = (time.monotonic(), checks)
        return checks

    def _database_ok(self) -> bool:
        try:
            ping(self._engine)
            return True
        except SQLAlchemyError:
            return False
