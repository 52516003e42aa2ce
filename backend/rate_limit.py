"""A per-client token bucket for the participation endpoints (one bucket per client address and process)."""

from __future__ import annotations

import math
import time
from typing import Annotated

from fastapi import Depends, Request

from backend.errors import ApiError


class TokenBuckets:
    """`rate` requests per second per key, with bursts up to `burst`; memory bounded by `max_keys`."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = max(burst, 1)
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, now: float | None = None) -> float:
        """Take a token: 0.0 if allowed, else the seconds until the next token."""
        now = time.monotonic() if now is None else now
        # the dict keeps insertion order: taking a key out and putting it back makes it the most recent
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if len(self._buckets) >= self.max_keys:
            # full: forget the least recently seen client (an idle client's bucket has refilled anyway)
            del self._buckets[next(iter(self._buckets))]
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate


def check_rate(buckets: TokenBuckets, client: str) -> None:
    """429 RATE_LIMITED, with the seconds to wait, when this client is over its rate (rate 0: no limit)."""
    if buckets.rate <= 0:
        return
    wait = buckets.take(client)
    if wait:
        raise ApiError(
            429,
            "RATE_LIMITED",
            "too many participation requests from this client, slow down",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )


async def limit_participation(request: Request) -> None:
    check_rate(request.app.state.rate_limiter, request.client.host if request.client else "unknown")


RateLimitDep = Annotated[None, Depends(limit_participation)]
