"""Simulated users have ids of their own, which no real user can have.

The crowd simulator and the bulk load take part as users from 2^52 to 2^53 − 1; a real user is 1 … 2^52 − 1
(a body `userId` or a token's `sub`). The door takes an id of the simulated range only with the header
`X-Simulated-User`: a MAC of the id under a key derived from `REQUEST_ID_SECRET`, which the simulator has
and a client does not; without it, `422 VALIDATION_ERROR`. So a demo tool run against a live campaign
cannot spend a real person's single try, and winners and look-ups say which users were simulated.
"""

from __future__ import annotations

import hashlib
import hmac

FIRST_SIMULATED_USER = 2**52
LAST_REAL_USER = FIRST_SIMULATED_USER - 1
HEADER = "X-Simulated-User"
RESERVED = "reserved for simulated users (the crowd simulator and the bulk load)"


def is_simulated(user_id: int) -> bool:
    return user_id >= FIRST_SIMULATED_USER


def simulated_user(number: int) -> int:
    """The `number`-th simulated user (1: the first of the range)."""
    return FIRST_SIMULATED_USER + number - 1


class SimulationProofs:
    """The header's value for a simulated user id, and its check."""

    def __init__(self, secret: str) -> None:
        key = hashlib.sha256(b"fcfs-simulated-user:" + secret.encode()).digest()
        self._mac = hashlib.blake2s(key=key, digest_size=16, person=b"fcfs-sim")

    def proof(self, user_id: int) -> str:
        mac = self._mac.copy()
        mac.update(user_id.to_bytes(8, "big"))
        return mac.hexdigest()

    def verify(self, user_id: int, given: bytes | str | None) -> bool:
        if given is None:
            return False
        if isinstance(given, bytes):
            given = given.decode("latin-1")
        return hmac.compare_digest(given, self.proof(user_id))
