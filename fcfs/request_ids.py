"""Request ids the API signs, so a status lookup can tell an id it never issued without a database read.

An id is `<payload>.<signature>`, both base64url: the payload is a 6-byte millisecond timestamp,
6 random bytes and the 8-byte userId (time-ordered, so the unique index grows at its end); the
signature is an HMAC-SHA256 over the campaign id and the payload, cut to 12 bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class IssuedRequest:
    request_id: str
    user_id: int
    issued_at_ms: int


class RequestIdSigner:
    """Issues and verifies request ids with one secret."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(secret.encode()).digest()

    def issue(self, campaign_id: int, user_id: int, now_ms: int | None = None) -> IssuedRequest:
        issued_at = int(time.time() * 1000) if now_ms is None else now_ms
        payload = issued_at.to_bytes(6, "big") + os.urandom(6) + user_id.to_bytes(8, "big")
        return IssuedRequest(f"{_b64(payload)}.{_b64(self._sign(campaign_id, payload))}", user_id, issued_at)

    def verify(self, campaign_id: int, request_id: str) -> IssuedRequest | None:
        """The request behind an id, or None when this system did not issue it for this campaign."""
        body, dot, signature = request_id.partition(".")
        if not dot or len(body) != 27 or len(signature) != 16:
            return None
        try:
            payload = _unb64(body)
            given = _unb64(signature)
        except (binascii.Error, ValueError):
            return None
        if len(payload) != 20 or not hmac.compare_digest(given, self._sign(campaign_id, payload)):
            return None
        return IssuedRequest(request_id, int.from_bytes(payload[12:], "big"), int.from_bytes(payload[:6], "big"))

    def _sign(self, campaign_id: int, payload: bytes) -> bytes:
        return hmac.new(self._key, campaign_id.to_bytes(8, "big") + payload, hashlib.sha256).digest()[:12]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
