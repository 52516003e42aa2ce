"""The event format on the topic: round trip and the reasons a message is refused."""

from __future__ import annotations

import orjson
import pytest

from fcfs.events import MAX_USER_ID, InvalidEvent, ParticipationEvent


def test_round_trip() -> None:
    event = ParticipationEvent("rid", 3, 42, 1_700_000_000_123)
    assert ParticipationEvent.from_json(event.to_json()) == event
    assert event.key() == b"3"


@pytest.mark.parametrize(
    "raw, reason",
    [
        (None, "empty"),
        (b"\xff\x00", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"campaignId": 1, "userId": 1, "requestedAt": 1}', "requestId"),
        (b'{"requestId": "", "campaignId": 1, "userId": 1, "requestedAt": 1}', "requestId"),
        (b'{"requestId": "r", "campaignId": 0, "userId": 1, "requestedAt": 1}', "campaignId"),
        (b'{"requestId": "r", "campaignId": 1, "userId": true, "requestedAt": 1}', "userId"),
        (b'{"requestId": "r", "campaignId": 1, "userId": 1.0, "requestedAt": 1}', "userId"),
        (orjson.dumps({"requestId": "r", "campaignId": 1, "userId": MAX_USER_ID + 1, "requestedAt": 1}), "userId"),
        (b'{"requestId": "r", "campaignId": 1, "userId": 1, "requestedAt": -1}', "requestedAt"),
        (b'{"requestId": "r", "campaignId": 1, "userId": 1}', "requestedAt"),
    ],
)
def test_invalid_messages_say_why(raw: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        ParticipationEvent.from_json(raw)
