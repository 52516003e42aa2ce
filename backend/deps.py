"""Dependencies of the route handlers, as `Annotated` aliases.

All of them are `async def`: they do no I/O, and FastAPI would run a plain `def` dependency in the
thread pool — a thread hand-off per dependency per request, which cost the participation endpoint
most of its throughput (see docs/experiments/ingest-profile.md)."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from backend.campaign_cache import CampaignCache
from backend.errors import ApiError
from backend.producer import AsyncProducer
from fcfs.request_ids import RequestIdSigner
from fcfs.settings import Settings


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_engine_dep(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_producer(request: Request) -> AsyncProducer:
    producer: AsyncProducer = request.app.state.producer
    return producer


async def get_signer(request: Request) -> RequestIdSigner:
    signer: RequestIdSigner = request.app.state.signer
    return signer


async def get_campaign_cache(request: Request) -> CampaignCache:
    cache: CampaignCache = request.app.state.campaigns
    return cache


_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <ADMIN_TOKEN>")


async def require_admin(
    settings: Annotated[Settings, Depends(get_settings_dep)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Admin endpoints need `Authorization: Bearer <ADMIN_TOKEN>` (compared in constant time)."""
    given = credentials.credentials.encode() if credentials else b""
    if not secrets.compare_digest(given, settings.admin_token.encode()):
        raise ApiError(401, "UNAUTHORIZED", "admin token missing or wrong", headers={"WWW-Authenticate": "Bearer"})


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
EngineDep = Annotated[Engine, Depends(get_engine_dep)]
ProducerDep = Annotated[AsyncProducer, Depends(get_producer)]
SignerDep = Annotated[RequestIdSigner, Depends(get_signer)]
CampaignCacheDep = Annotated[CampaignCache, Depends(get_campaign_cache)]
AdminDep = Depends(require_admin)
