"""Dependencies of the route handlers, as `Annotated` aliases.

All of them are `async def`: they do no I/O, and FastAPI would run a plain `def` dependency in the
thread pool — a thread hand-off per dependency per request, which cost the participation endpoint
most of its throughput (see docs/experiments/ingest-profile.md)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from backend.app.errors import unauthorized
from backend.door.campaign_cache import CampaignCache
from backend.door.intake import Intake
from backend.door.producer import AsyncProducer
from fcfs.request_ids import RequestIdSigner
from fcfs.settings import Settings


def _app_state(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency that hands a route the object the app built at start-up as `app.state.<name>`."""

    async def dependency(request: Request) -> Any:
        return getattr(request.app.state, name)

    return dependency


get_settings_dep = _app_state("settings")


_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <ADMIN_TOKEN>")


async def require_admin(
    settings: Annotated[Settings, Depends(get_settings_dep)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Admin endpoints need `Authorization: Bearer <ADMIN_TOKEN>` (compared in constant time)."""
    given = credentials.credentials.encode() if credentials else b""
    if not secrets.compare_digest(given, settings.admin_token.get_secret_value().encode()):
        raise unauthorized()


def client_address(request: Request) -> str:
    """The client's address (behind trusted proxies, the one they name), as the rate limits count it."""
    peer = request.client.host if request.client else "unknown"
    forwarded_for = ",".join(request.headers.getlist("x-forwarded-for"))  # every header, in order, as the door
    return request.app.state.clients.of(peer, forwarded_for)  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
EngineDep = Annotated[Engine, Depends(_app_state("engine"))]
ProducerDep = Annotated[AsyncProducer, Depends(_app_state("producer"))]
SignerDep = Annotated[RequestIdSigner, Depends(_app_state("signer"))]
CampaignCacheDep = Annotated[CampaignCache, Depends(_app_state("campaigns"))]
IntakeDep = Annotated[Intake, Depends(_app_state("intake"))]
AdminDep = Depends(require_admin)
