"""The participant's page: `GET /c/{campaignId}`, a "Take part" button that shows the ticket, the place in line
and the outcome (one POST, then the held look-up). Plain HTML, CSS and JavaScript, no build step."""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Path
from starlette.responses import Response

from backend.app.deps import EngineDep, SettingsDep
from backend.contract.schemas import CampaignId
from backend.queries import campaigns

router = APIRouter(tags=["participant"])
# the page loads only its own script and style and talks only to this door; any site may frame it (USER_AUTH=jwt)
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
ASSETS = {"page.js": "text/javascript; charset=utf-8", "page.css": "text/css; charset=utf-8"}


@cache
def _asset(name: str) -> str:
    return resources.files("backend.participant").joinpath(name).read_text(encoding="utf-8")


def _asset_route(name: str) -> None:
    def asset() -> Response:
        return Response(_asset(name), media_type=ASSETS[name], headers={**HEADERS, "Cache-Control": "max-age=300"})

    router.add_api_route(f"/c/{name}", asset, methods=["GET"], include_in_schema=False, name=f"participant {name}")


for _name in ASSETS:  # before /c/{campaignId}: the first route that matches a path serves it
    _asset_route(_name)


def _span(seconds: int) -> str:
    """A claim window as people say it: 90 s, 5 minutes, 2 hours, 3 days."""
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n > 1 else ''}"
    return f"{seconds} s"


@router.get(
    "/c/{campaignId}",
    summary="The participant's page: take part, see the ticket and the place in line, then the outcome",
    response_class=Response,
    responses={200: {"content": {"text/html": {}}}, 404: {"content": {"text/html": {}}}},
)
def participant_page(
    campaign_id: Annotated[CampaignId, Path(alias="campaignId")], engine: EngineDep, settings: SettingsDep
) -> Response:
    row = campaigns.get_campaign(engine, campaign_id=campaign_id)
    if row is None:
        page = _asset("missing.html").replace("{campaign_id}", str(campaign_id))
        return Response(page, 404, media_type="text/html; charset=utf-8", headers=HEADERS)
    stock = "prize" if row.total_stock == 1 else "prizes"
    claim = f"; winners claim within {_span(row.claim_seconds)}" if row.claim_seconds else ""
    rule = "first come, first served"
    if row.pre_queue_seconds:  # a fair opening: the pre-queue is decided at startsAt, then first come, first served
        held = "in a random order drawn at the opening" if row.pre_queue_order.value == "DRAW" else "in arrival order"
        rule = f"clicks from {_span(row.pre_queue_seconds)} before the opening are decided {held}, then {rule}"
    page = (
        _asset("page.html")
        .replace("{campaign_id}", str(campaign_id))
        .replace("{auth}", settings.user_auth)
        .replace("{claim_seconds}", str(row.claim_seconds))
        .replace("{about}", html.escape(f"{row.total_stock:,} {stock}, {rule}{claim}"))
        .replace("{name}", html.escape(row.name))  # last: a name may hold "{about}" and stays as written
    )
    return Response(page, media_type="text/html; charset=utf-8", headers={**HEADERS, "Cache-Control": "no-cache"})
