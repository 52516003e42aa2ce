"""The dashboard's only way to the system: the backend's HTTP API, with errors people can read."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from fcfs.settings import get_settings


class BackendUnavailable(Exception):
    """The API did not answer (down, restarting, unreachable)."""


class BackendError(Exception):
    """The API answered with an error envelope."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class Timed:
    data: Any
    wall_ms: float


OPERATOR = {"X-Operator": "dashboard"}  # who the switch log says made a switch from the Live page


class ApiClient:
    def __init__(self, base_url: str, admin_token: str, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout_s, headers={"Authorization": f"Bearer {admin_token}"}
        )

    @classmethod
    def from_settings(cls) -> ApiClient:
        settings = get_settings()
        return cls(settings.api_base_url, settings.admin_token.get_secret_value())

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.timed(method, path, **kwargs).data

    def timed(self, method: str, path: str, **kwargs: Any) -> Timed:
        t0 = time.perf_counter()
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise BackendUnavailable(f"the API at {self.base_url} is not reachable ({type(exc).__name__})") from None
        wall_ms = (time.perf_counter() - t0) * 1000
        try:
            body = response.json()
        except ValueError:
            raise BackendError(response.status_code, None, f"unexpected answer ({response.status_code})") from None
        if response.status_code >= 400 or not body.get("success", False):
            raise BackendError(response.status_code, body.get("errorCode"), body.get("message") or "error")
        return Timed(body.get("data"), wall_ms)

    # the calls the pages make
    def campaigns(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/api/campaigns"))

    def status(self, campaign_id: int) -> dict[str, Any]:
        return dict(self.call("GET", f"/api/campaigns/{campaign_id}/status"))

    def timeline(self, campaign_id: int, after: int | None = None) -> dict[str, Any]:
        params = {} if after is None else {"after": after}
        return dict(self.call("GET", f"/api/campaigns/{campaign_id}/timeline", params=params))

    def kafka(self) -> dict[str, Any]:
        return dict(self.call("GET", "/api/admin/kafka"))

    def lag_history(self, seconds: int = 300, after: int | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"seconds": seconds}
        if after is not None:
            params["after"] = after
        return dict(self.call("GET", "/api/admin/kafka/lag-history", params=params))

    def live(self) -> None:
        self.call("GET", "/health/live")

    def create_campaign(
        self, name: str, total_stock: int, mode: str = "KAFKA", weight: int = 1, **event: Any
    ) -> dict[str, Any]:
        """A new campaign; `event`: its optional fields as the API names them (`startsAt`, `endsAt`,
        `preQueueSeconds`, `preQueueOrder`, `claimSeconds`)."""
        body = {"name": name, "totalStock": total_stock, "mode": mode, "weight": weight, **event}
        return dict(self.call("POST", "/api/admin/campaigns", json=body))

    def switch(self, campaign_id: int, action: str) -> dict[str, Any]:
        """`pause`, `resume` or `end` the campaign, recorded as the dashboard's switch."""
        return dict(self.call("POST", f"/api/admin/campaigns/{campaign_id}/{action}", headers=OPERATOR))

    def move_end(self, campaign_id: int, ends_at: dt.datetime | None) -> dict[str, Any]:
        body = {"endsAt": None if ends_at is None else ends_at.isoformat()}
        return dict(self.call("PATCH", f"/api/admin/campaigns/{campaign_id}", json=body, headers=OPERATOR))

    def add_stock(self, campaign_id: int, add: int) -> dict[str, Any]:
        url = f"/api/admin/campaigns/{campaign_id}/stock"
        return dict(self.call("POST", url, json={"add": add}, headers=OPERATOR))

    def alerts(self, limit: int = 50) -> list[dict[str, Any]]:
        return list(self.call("GET", "/api/admin/alerts", params={"limit": limit}))

    def claims(self, campaign_id: int) -> dict[str, Any]:
        return dict(self.call("GET", f"/api/admin/campaigns/{campaign_id}/claims"))

    def draw(self, campaign_id: int) -> dict[str, Any]:
        return dict(self.call("GET", f"/api/admin/campaigns/{campaign_id}/draw"))

    def switches(self, campaign_id: int) -> list[dict[str, Any]]:
        return list(self.call("GET", f"/api/admin/campaigns/{campaign_id}/switches"))

    def winners_csv(self, campaign_id: int) -> bytes:
        """The winners as CSV (the API streams it; the download button keeps it for the browser)."""
        return self._csv(f"/api/admin/campaigns/{campaign_id}/winners.csv", "winners export")

    def pre_queue_csv(self, campaign_id: int) -> bytes:
        """The pre-queue in log order with each request's outcome, as CSV (to check the draw)."""
        return self._csv(f"/api/admin/campaigns/{campaign_id}/pre-queue.csv", "pre-queue export")

    def _csv(self, path: str, what: str) -> bytes:
        try:
            response = self._http.get(path, timeout=300)
        except httpx.TransportError as exc:
            raise BackendUnavailable(f"the API at {self.base_url} is not reachable ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise BackendError(response.status_code, None, f"{what} failed ({response.status_code})")
        return response.content

    def participant(self, campaign_id: int, params: dict[str, Any]) -> dict[str, Any]:
        """Support look-up: a user's requests, by `userId` or `requestId`."""
        return dict(self.call("GET", f"/api/admin/campaigns/{campaign_id}/participants", params=params))

    def demo_history(self, days: int, campaigns_per_day: int, rows: int) -> dict[str, Any]:
        """Generate labelled demo history and aggregate its days (seconds: a long call)."""
        body = {"days": days, "campaignsPerDay": campaigns_per_day, "rows": rows}
        return dict(self.call("POST", "/api/admin/demo/history", json=body, timeout=300))

    def start_crowd(
        self,
        campaign_id: int,
        users: int,
        seconds: float,
        repeat_share: float,
        shape: str,
        connections: int,
        wait_share: float = 0.0,
    ) -> dict[str, Any]:
        body = {
            "campaignId": campaign_id,
            "users": users,
            "seconds": seconds,
            "repeatShare": repeat_share,
            "shape": shape,
            "connections": connections,
            "waitShare": wait_share,
        }
        return dict(self.call("POST", "/api/admin/crowd", json=body))

    def crowd_runs(self, limit: int = 10) -> list[dict[str, Any]]:
        return list(self.call("GET", "/api/admin/crowd", params={"limit": limit}))

    def crowd_run(self, run_id: int) -> dict[str, Any]:
        return dict(self.call("GET", f"/api/admin/crowd/{run_id}"))

    def stop_crowd(self, run_id: int) -> dict[str, Any]:
        return dict(self.call("POST", f"/api/admin/crowd/{run_id}/stop"))

    def participate_bulk(self, campaign_id: int, count: int) -> dict[str, Any]:
        body = {"campaignId": campaign_id, "count": count}
        return dict(self.call("POST", "/api/admin/test/participate-bulk", json=body))

    def aggregate(self, day: dt.date) -> dict[str, Any]:
        return dict(self.call("POST", "/api/admin/batch/aggregate", params={"date": day.isoformat()}))

    def job(self, job_id: int) -> dict[str, Any]:
        return dict(self.call("GET", f"/api/admin/batch/status/{job_id}"))

    def job_history(self, limit: int = 20) -> list[dict[str, Any]]:
        return list(self.call("GET", "/api/admin/batch/history", params={"limit": limit}))

    def statistics(self, method: Literal["raw", "daily"], params: dict[str, str]) -> Timed:
        """The statistics of a day or period, from the history (`raw`) or the aggregates (`daily`), timed."""
        return self.timed("GET", f"/api/admin/stats/{method}", params=params)

    def workers(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/api/admin/workers"))

    def dead_letters(self, limit: int = 200) -> dict[str, Any]:
        return dict(self.call("GET", "/api/admin/dlq", params={"limit": limit}))

    def replay_pending(self) -> dict[str, Any]:
        return dict(self.call("POST", "/api/admin/dlq/replay", json={"allPending": True}))
