"""The participation event on the Kafka topic: its JSON form and its validation."""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson

from fcfs.request_ids import RequestIdSigner

# userId is a positive integer that every JSON client can represent exactly (2^53 - 1).
MAX_USER_ID = 9_007_199_254_740_991
MAX_CAMPAIGN_ID = 2**63 - 1
MAX_REQUESTED_AT_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant a DATETIME holds
EVENT_VERSION = 1


class InvalidEvent(ValueError):
    """A message that can never be decided: it goes to the dead-letter topic with this reason."""


@dataclass(frozen=True, slots=True)
class ParticipationEvent:
    """One accepted participation request, as the API published it."""

    request_id: str
    campaign_id: int
    user_id: int
    requested_at_ms: int

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "v": EVENT_VERSION,
                "requestId": self.request_id,
                "campaignId": self.campaign_id,
                "userId": self.user_id,
                "requestedAt": self.requested_at_ms,
            }
        )

    def key(self) -> bytes:
        """The partitioning key: all of a campaign's requests share one partition, so one order."""
        return campaign_key(self.campaign_id)

    @classmethod
    def from_json(cls, raw: bytes | None) -> ParticipationEvent:
        """Parse and validate a message value; raise InvalidEvent saying what is wrong."""
        if raw is None:
            raise InvalidEvent("empty message")
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent(f"not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise InvalidEvent("not a JSON object")
        request_id = doc.get("requestId")
        if not isinstance(request_id, str) or not 1 <= len(request_id) <= 64:
            raise InvalidEvent("requestId must be a string of 1 to 64 characters")
        campaign_id = _positive_int(doc, "campaignId", MAX_CAMPAIGN_ID)
        user_id = _positive_int(doc, "userId", MAX_USER_ID)
        requested_at = doc.get("requestedAt")
        if type(requested_at) is not int or not 0 <= requested_at <= MAX_REQUESTED_AT_MS:
            raise InvalidEvent(f"requestedAt must be epoch milliseconds from 0 to {MAX_REQUESTED_AT_MS}")
        return cls(request_id, campaign_id, user_id, requested_at)


def signed_event(
    signer: RequestIdSigner,
    campaign_id: int,
    user_id: int,
    idempotency_key: str | None = None,
    now_ms: int | None = None,
) -> ParticipationEvent:
    """A participation request with an id the API signed (a keyed id when an idempotency key is given),
    as every path that publishes or records requests builds it."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if idempotency_key is None:
        issued = signer.issue(campaign_id, user_id, now)
    else:
        issued = signer.issue_keyed(campaign_id, user_id, idempotency_key)
    return ParticipationEvent(issued.request_id, campaign_id, user_id, now)


def unsigned(signer: RequestIdSigner, event: ParticipationEvent) -> str | None:
    """Why the worker must not decide this event because the API did not issue its id to this campaign
    and user (anyone who can write to the topic could otherwise forge a request), or None."""
    issued = signer.verify(event.campaign_id, event.request_id)
    if issued is None:
        return f"requestId was not issued by this system for campaign {event.campaign_id}"
    if issued.user_id != event.user_id:
        return f"requestId was issued to another user than userId {event.user_id}"
    return None


def campaign_key(campaign_id: int) -> bytes:
    return str(campaign_id).encode()


def _positive_int(doc: dict[str, object], name: str, maximum: int) -> int:
    value = doc.get(name)
    if type(value) is not int or not 1 <= value <= maximum:
        raise InvalidEvent(f"{name} must be an integer from 1 to {maximum}")
    return value
