"""Operator endpoints for the running system: workers, Kafka lag, the dead-letter topic, the alerts."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from confluent_kafka import KafkaException
from fastapi import APIRouter, Path, Query, Request
from pydantic import Field
from starlette.responses import Response

from backend.app.deps import AdminDep, EngineDep, SettingsDep
from backend.app.errors import ApiError, dead_letter_not_found, envelope, invalid, kafka_unavailable
from backend.contract.presenters import dead_letter_json, iso, worker_json
from backend.contract.responses import (
    AlertPublic,
    DeadLetterPublic,
    DeadLetters,
    KafkaState,
    LagHistory,
    Replayed,
    Worker,
    errors,
    ok,
)
from backend.contract.schemas import CamelModel
from backend.queries.operations import lag_series, partition_figures, recent_alerts, recent_workers
from backend.queries.timeline import lag_status
from fcfs.db import utcnow
from fcfs.dead_letters import read_dead_letter, read_dead_letters, replay, replayed_offsets
from fcfs.epoch import from_epoch_s

router = APIRouter(prefix="/api/admin", tags=["operations"], dependencies=[AdminDep], responses=errors(401, 503))
STATUS_WINDOW = dt.timedelta(seconds=15)


@router.get(
    "/workers", summary="Workers by their heartbeats: alive, partitions, progress", responses=ok(200, list[Worker])
)
def workers(engine: EngineDep, settings: SettingsDep) -> Response:
    now = utcnow()
    rows = recent_workers(engine, since=now - dt.timedelta(hours=1))
    data = [worker_json(r, now, settings.tz) for r in rows]
    return envelope(data)


@router.get(
    "/alerts",
    summary="Recent alerts, newest first: incidents (firing, resolved) and events, and where they were delivered",
    responses={**ok(200, list[AlertPublic]), **errors(422)},
)
def alerts(engine: EngineDep, settings: SettingsDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> Response:
    events = {"SOLD_OUT", "CROWD_FINISHED"}
    data = [
        {
            "id": r.id,
            "kind": r.kind,
            "subject": r.subject,
            "text": r.text,
            "state": "EVENT" if r.kind in events else "FIRING" if r.resolved_at is None else "RESOLVED",
            "openedAt": iso(r.opened_at, settings.tz),
            "resolvedAt": None if r.kind in events else iso(r.resolved_at, settings.tz),
            "delivered": bool(r.done) or (r.resolved_at is None and bool(r.fired_to)),
            "attempts": r.attempts,
            "lastError": r.last_error,
        }
        for r in recent_alerts(engine, limit=limit)
    ]
    return envelope(data)


@router.get(
    "/kafka",
    summary="The participation topic: offsets, lag and placed load per partition, lag status, throughput",
    responses=ok(200, KafkaState),
)
def kafka(request: Request, engine: EngineDep, settings: SettingsDep) -> Response:
    try:
        view = request.app.state.kafka_view.lag()
    except (KafkaException, KeyError) as exc:
        raise kafka_silent(exc) from None
    now = utcnow()
    recent, view["decidedPerSecond"], loads = partition_figures(
        engine, topic=settings.kafka_topic, since=now - STATUS_WINDOW, now=now, partitions=len(view["partitions"])
    )
    for partition, load in zip(view["partitions"], loads, strict=True):
        partition["status"] = lag_status(recent.get(partition["partition"], []))
        partition["liveCampaigns"], partition["liveWeight"] = load.campaigns, load.weight
    statuses = {p["status"] for p in view["partitions"]}
    view["status"] = next((s for s in ("STALLED", "WARN", "UNKNOWN") if s in statuses), "OK")
    return envelope(view)


@router.get(
    "/kafka/lag-history",
    summary="Consumer lag per partition over time (sampled every second)",
    responses={**ok(200, LagHistory), **errors(422)},
)
def kafka_lag_history(
    engine: EngineDep,
    settings: SettingsDep,
    seconds: Annotated[int, Query(ge=1, le=86_400)] = 300,
    after: Annotated[
        int | None, Query(ge=0, le=4_102_444_800, description="epoch seconds: only samples after it")
    ] = None,
) -> Response:
    since = utcnow() - dt.timedelta(seconds=seconds)
    if after is not None:
        since = max(since, from_epoch_s(after))
    series = lag_series(engine, topic=settings.kafka_topic, since=since)
    return envelope(
        {
            "topic": settings.kafka_topic,
            "partitions": [{"partition": p, "samples": s} for p, s in sorted(series.items())],
        }
    )


def kafka_silent(exc: Exception) -> ApiError:
    return kafka_unavailable(f"Kafka did not answer: {exc}")


@router.get(
    "/dlq",
    summary="Recent dead letters, newest first, with their reasons",
    responses={**ok(200, DeadLetters), **errors(422)},
)
def dead_letters(
    engine: EngineDep, settings: SettingsDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> Response:
    try:
        letters = read_dead_letters(settings, limit)
    except KafkaException as exc:
        raise kafka_silent(exc) from None
    done = replayed_offsets(engine, settings.dlq_topic)
    return envelope(
        {
            "topic": settings.dlq_topic,
            "deadLetters": [dead_letter_json(d, (d.partition, d.offset) in done) for d in letters],
        }
    )


@router.get(
    "/dlq/{partition}/{offset}",
    summary="One dead letter with its whole key and value (a listing shows the first 1,024 bytes)",
    responses={**ok(200, DeadLetterPublic), **errors(422, _404="DEAD_LETTER_NOT_FOUND")},
)
def dead_letter(
    engine: EngineDep,
    settings: SettingsDep,
    partition: Annotated[int, Path(ge=0, le=100_000)],
    offset: Annotated[int, Path(ge=0, le=2**63 - 1)],
) -> Response:
    try:
        found = read_dead_letter(settings, partition, offset)
    except KafkaException as exc:
        raise kafka_silent(exc) from None
    if found is None:
        raise dead_letter_not_found(f"{settings.dlq_topic}/{partition}@{offset}")
    replayed = (partition, offset) in replayed_offsets(engine, settings.dlq_topic)
    return envelope(dead_letter_json(found, replayed, preview_bytes=None))


class DlqPosition(CamelModel):
    partition: Annotated[int, Field(ge=0, le=100_000)]
    offset: Annotated[int, Field(ge=0, le=2**63 - 1)]


class ReplayRequest(CamelModel):
    offsets: Annotated[list[DlqPosition], Field(default_factory=list, max_length=1000)]
    all_pending: bool = False


@router.post(
    "/dlq/replay",
    summary="Publish dead letters to the participation topic again (each at most once)",
    responses={**ok(200, Replayed), **errors(400, 408, 413, 422)},
)
def replay_dead_letters(body: ReplayRequest, engine: EngineDep, settings: SettingsDep) -> Response:
    positions = [(p.partition, p.offset) for p in body.offsets]
    if body.all_pending:
        done = replayed_offsets(engine, settings.dlq_topic)
        positions += [
            (d.partition, d.offset)
            for d in reversed(read_dead_letters(settings, 1000))
            if (d.partition, d.offset) not in done
        ]
    if not positions:
        raise invalid("offsets", "give the dead letters to replay, or allPending: true")
    results: list[dict[str, Any]] = replay(settings, engine, list(dict.fromkeys(positions)))
    replayed = sum(1 for r in results if r["status"] == "REPLAYED")
    return envelope({"replayed": replayed, "results": results}, f"{replayed} dead letter(s) replayed")
