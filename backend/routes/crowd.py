"""A storm on demand: start a crowd of simulated users through the real door (its own process,
`python -m crowd --run ID`), follow what it measures while it runs, stop it."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from pydantic import Field, StrictFloat, StrictInt
from sqlalchemy import Engine, Row
from starlette.responses import Response

from backend.app.deps import AdminDep, EngineDep, SettingsDep
from backend.app.errors import (
    campaign_not_found,
    crowd_not_running,
    crowd_not_started,
    crowd_run_not_found,
    crowd_running,
    crowd_target_not_local,
    envelope,
)
from backend.contract.presenters import run_json
from backend.contract.responses import CrowdRun, errors, link, ok
from backend.contract.schemas import CamelModel, CampaignId
from backend.queries.campaigns import campaign_exists
from fcfs.crowd_runs import (
    MAX_CONNECTIONS,
    MAX_REPEAT_SHARE,
    MAX_SECONDS,
    MAX_USERS,
    MAX_WAIT_SHARE,
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
    wait_share: Annotated[
        StrictInt | StrictFloat,
        Field(ge=0, le=MAX_WAIT_SHARE, description="share of users who wait for their outcome (the held look-up)"),
    ] = 0


def _run(engine: Engine, run_id: int) -> Row[Any]:
    row = get_run(engine, run_id)
    if row is None:
        raise crowd_run_not_found(run_id)
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
    if not campaign_exists(engine, campaign_id=body.campaign_id):
        raise campaign_not_found(body.campaign_id)
    target = settings.crowd_target
    if not is_loopback(target) and not settings.crowd_allow_remote:
        raise crowd_target_not_local(target)
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
            wait_share=float(body.wait_share),
        )
    except CrowdRunning as exc:
        raise crowd_running(str(exc)) from None
    try:
        spawn(run_id)
    except OSError as exc:
        end_run(engine, run_id, RunStatus.FAILED, error=f"could not start the crowd's process: {exc}")
        raise crowd_not_started() from exc
    return envelope(run_json(_run(engine, run_id), settings.tz), f"crowd run {run_id} starting", 202)


@router.get("", operation_id="crowdRuns", summary="Crowd runs, newest first", responses=ok(200, list[CrowdRun]))
def crowd_runs(engine: EngineDep, settings: SettingsDep, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> Response:
    return envelope([run_json(r, settings.tz) for r in list_runs(engine, limit=limit)])


@router.get(
    "/{runId}",
    operation_id="crowdRun",
    summary="A crowd run with what it measured, second by second",
    responses={**ok(200, CrowdRun), **errors(404, 422)},
)
def crowd_run(run_id: RunId, engine: EngineDep, settings: SettingsDep) -> Response:
    row = _run(engine, run_id)
    return envelope(run_json(row, settings.tz, run_seconds(engine, run_id)))


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
        raise crowd_not_running(run_id, status_of(row, utcnow()).value)
    request_stop(engine, run_id)
    return envelope(run_json(_run(engine, run_id), settings.tz), f"crowd run {run_id} stopping", 202)
