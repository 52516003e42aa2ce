"""A storm on demand: start a crowd of simulated users through the real door (its own process,
`python -m crowd --run ID`), follow what it measures while it runs, stop it."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from pydantic import Field, StrictFloat, StrictInt
from sqlalchemy import Engine, Row, select
from starlette.responses import Response

from backend.deps import AdminDep, EngineDep, SettingsDep
from backend.errors import ApiError, campaign_not_found, envelope
from backend.presenters import iso
from backend.responses import CrowdRun, errors, link, ok
from backend.schemas import CamelModel, CampaignId
from fcfs.crowd_runs import (
    MAX_CONNECTIONS,
    MAX_REPEAT_SHARE,
    MAX_SECONDS,
    MAX_USERS,
    CrowdRunning,
    RunStatus,
    create_run,
    end_run,
    get_run,
    is_loopback,
    list_runs,
    request_stop,
    run_seconds,
    status_of,
)
from fcfs.db import utcnow
from fcfs.schema import campaign
from fcfs.settings import Settings

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/admin/crowd", tags=["crowd"], dependencies=[AdminDep], responses=errors(401, 503))
ROOT = Path(__file__).resolve().parents[2]
RunId = Annotated[int, PathParam(alias="runId", ge=1, le=2**63 - 1)]


class CrowdRequest(CamelModel):
    campaign_id: CampaignId
    users: Annotated[StrictInt, Field(ge=1, le=MAX_USERS, description="distinct simulated users")] = 10_000
    seconds: Annotated[StrictInt | StrictFloat, Field(gt=0, le=MAX_SECONDS, description="the storm's length")] = 10
    repeat_share: Annotated[
        StrictInt | StrictFloat, Field(ge=0, le=MAX_REPEAT_SHARE, description="share of clicks that are repeats")
    ] = 0.1
    shape: Literal["flat", "rush"] = "flat"
    connections: Annotated[StrictInt, Field(ge=1, le=MAX_CONNECTIONS, description="requests in flight at most")] = 200


def run_json(row: Row[Any], settings: Settings, seconds: list[Row[Any]] | None = None) -> dict[str, Any]:
    data = {
        "runId": row.id,
        "campaignId": row.campaign_id,
        "targetUrl": row.target_url,
        "users": row.users,
        "seconds": row.seconds,
        "repeatShare": row.repeat_share,
        "shape": row.shape,
        "connections": row.connections,
        "planned": row.planned,
        "status": status_of(row, utcnow()).value,
        "stopRequested": bool(row.stop_requested),
        "sent": row.sent,
        "accepted": row.accepted,
        "refused": row.refused,
        "failed": row.failed,
        "answers": json.loads(row.answers),
        "p50Ms": row.p50_ms,
        "p95Ms": row.p95_ms,
        "p99Ms": row.p99_ms,
        "maxMs": row.max_ms,
        "behindS": row.behind_s,
        "error": row.error,
        "createdAt": iso(row.created_at, settings.tz),
        "startedAt": iso(row.started_at, settings.tz),
        "endedAt": iso(row.ended_at, settings.tz),
        "heartbeatAt": iso(row.heartbeat_at, settings.tz),
    }
    if seconds is not None:
        data["perSecond"] = [
            {
                "at": iso(s.second, settings.tz),
                "sent": s.sent,
                "accepted": s.accepted,
                "refused": s.refused,
                "failed": s.failed,
                "p50Ms": s.p50_ms,
                "p95Ms": s.p95_ms,
                "p99Ms": s.p99_ms,
            }
            for s in seconds
        ]
    return data


def _run(engine: Engine, run_id: int) -> Row[Any]:
    row = get_run(engine, run_id)
    if row is None:
        raise ApiError(404, "CROWD_RUN_NOT_FOUND", f"crowd run {run_id} not found")
    return row


def spawn(run_id: int) -> None:
    """The crowd's own process (a storm must not share the API's event loop), its exit reaped."""
    proc = subprocess.Popen([sys.executable, "-m", "crowd", "--run", str(run_id)], cwd=ROOT, start_new_session=True)
    threading.Thread(target=proc.wait, name=f"crowd-{run_id}", daemon=True).start()
    log.info("crowd run %d started as process %d", run_id, proc.pid)


@router.post(
    "",
    status_code=202,
    operation_id="startCrowd",
    summary="Start a crowd of simulated users through the participation door (one at a time)",
    responses={
        **ok(202, CrowdRun, links={"CrowdRun": link("crowdRun", runId="data.runId")}),
        **errors(400, 404, 409, 422),
    },
)
def start_crowd(body: CrowdRequest, engine: EngineDep, settings: SettingsDep) -> Response:
    """N users (and a share of repeat clicks) over T seconds to `POST /api/campaigns/{id}/participation`
    (`…/participation-sync` for a SYNC campaign) at `CROWD_TARGET_URL` — the public door on this machine
    unless configured otherwise, and loopback only unless `CROWD_ALLOW_REMOTE=true`."""
    with engine.connect() as conn:
        if conn.scalar(select(campaign.c.id).where(campaign.c.id == body.campaign_id)) is None:
            raise campaign_not_found(body.campaign_id)
    target = settings.crowd_target
    if not is_loopback(target) and not settings.crowd_allow_remote:
        raise ApiError(
            409, "CROWD_TARGET_NOT_LOCAL", f"{target} is not this machine; set CROWD_ALLOW_REMOTE=true to allow it"
        )
    try:
        run_id = create_run(
            engine,
            campaign_id=body.campaign_id,
            target_url=target,
            users=body.users,
            seconds=float(body.seconds),
            repeat_share=float(body.repeat_share),
            shape=body.shape,
            connections=body.connections,
        )
    except CrowdRunning as exc:
        raise ApiError(409, "CROWD_RUNNING", str(exc)) from None
    try:
        spawn(run_id)
    except OSError as exc:
        end_run(engine, run_id, RunStatus.FAILED, error=f"could not start the crowd's process: {exc}")
        raise ApiError(503, "CROWD_NOT_STARTED", "could not start the crowd's process") from exc
    return envelope(run_json(_run(engine, run_id), settings), f"crowd run {run_id} starting", 202)


@router.get("", operation_id="crowdRuns", summary="Crowd runs, newest first", responses=ok(200, list[CrowdRun]))
def crowd_runs(engine: EngineDep, settings: SettingsDep, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> Response:
    return envelope([run_json(r, settings) for r in list_runs(engine, limit=limit)])


@router.get(
    "/{runId}",
    operation_id="crowdRun",
    summary="A crowd run with what it measured, second by second",
    responses={**ok(200, CrowdRun), **errors(404, 422)},
)
def crowd_run(run_id: RunId, engine: EngineDep, settings: SettingsDep) -> Response:
    row = _run(engine, run_id)
    return envelope(run_json(row, settings, list(run_seconds(engine, run_id))))


@router.post(
    "/{runId}/stop",
    status_code=202,
    operation_id="stopCrowd",
    summary="Stop a crowd run: no more clicks are sent, the answers due are waited for",
    responses={**ok(202, CrowdRun), **errors(404, 409, 422)},
)
def stop_crowd(run_id: RunId, engine: EngineDep, settings: SettingsDep) -> Response:
    row = _run(engine, run_id)
    if status_of(row, utcnow()) not in (RunStatus.STARTING, RunStatus.RUNNING):
        raise ApiError(409, "CROWD_NOT_RUNNING", f"crowd run {run_id} is {status_of(row, utcnow()).value}")
    request_stop(engine, run_id)
    return envelope(run_json(_run(engine, run_id), settings), f"crowd run {run_id} stopping", 202)
