"""Liveness and readiness: is the process up; can it reach the database and Kafka."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from backend.deps import EngineDep, ProducerDep
from backend.errors import envelope
from backend.responses import Health, errors, ok

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", summary="The process answers", responses=ok(200, Health))
async def live() -> Response:
    return envelope({"status": "UP"})


@router.get(
    "/ready",
    summary="The database and Kafka are reachable (503 otherwise)",
    responses={**ok(200, Health), **errors(_503="NOT_READY: data.checks says which is DOWN")},
)
async def ready(engine: EngineDep, producer: ProducerDep) -> Response:
    def database_ok() -> bool:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    db_ok, kafka_ok = await asyncio.gather(run_in_threadpool(database_ok), run_in_threadpool(producer.reachable))
    checks = {"database": "UP" if db_ok else "DOWN", "kafka": "UP" if kafka_ok else "DOWN"}
    if db_ok and kafka_ok:
        return envelope({"status": "UP", "checks": checks})
    return envelope({"status": "DOWN", "checks": checks}, "not ready", 503, "NOT_READY")
