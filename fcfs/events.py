"""The participation event on the Kafka topic: its JSON form and its validation."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

# userId is a positive integer that every JSON client can represent exactly (2^53 - 1).
MAX_USER_ID = 9_007_199_254_740_991
MAX_CAMPAIGN_ID = 2**63 - 1
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
        if type(requested_at) is not int or not 0 <= requested_at < 2**48:
            raise InvalidEvent("requestedAt must be epoch milliseconds")
        return cls(request_id, campaign_id, user_id, requested_at)


def campaign_key(campaign_id: int) -> bytes:
    return str(campaign_id).encode()


def _positive_int(doc: dict[str, object], name: str, maximum: int) -> int:
    value = doc.get(name)
    if type(value) is not int or not 1 <= value <= maximum:
        raise InvalidEvent(f"{name} must be an integer from 1 to {maximum}")
    return value
