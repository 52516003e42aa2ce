"""What a crowd does: who clicks when. Pure logic, no I/O."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import NamedTuple

from fcfs.crowd_runs import MAX_REPEAT_SHARE, MAX_SECONDS, MAX_USERS, SHAPES, Shape, repeats

REPEAT_DELAY_S = 1.0  # the mean wait before a user clicks again ("did it work?")


class Click(NamedTuple):
    at_s: float  # seconds after the crowd starts
    user_id: int
    repeat: bool


@dataclass(frozen=True)
class Plan:
    """`users` distinct users over `seconds`; `repeat_share` of all clicks are a user clicking again.

    flat: first clicks spread evenly over the run; rush: most of them at the opening, fewer and fewer
    after (exponential, a quarter of the run on average), like a sale that opens at a set time.
    """

    users: int
    seconds: float
    repeat_share: float = 0.1
    shape: Shape = "flat"
    first_user_id: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.users <= MAX_USERS:
            raise ValueError(f"users: from 1 to {MAX_USERS:,}")
        if not 0 < self.seconds <= MAX_SECONDS:
            raise ValueError(f"seconds: more than 0, at most {MAX_SECONDS:g}")
        if not 0 <= self.repeat_share <= MAX_REPEAT_SHARE:
            raise ValueError(f"repeat share: from 0 to {MAX_REPEAT_SHARE}")
        if self.shape not in SHAPES:
            raise ValueError(f"shape: one of {', '.join(SHAPES)}")
        if self.first_user_id < 1:
            raise ValueError("first user id: at least 1")

    @property
    def repeats(self) -> int:
        return repeats(self.users, self.repeat_share)

    @property
    def clicks_total(self) -> int:
        return self.users + self.repeats

    def clicks(self, seed: int = 0) -> list[Click]:
        """Every click in the order they are sent: each user's first click, and the repeats, each after
        its user's first click and within the run."""
        rng = random.Random(seed)
        firsts = [self._first_click_at(rng) for _ in range(self.users)]
        clicks = [Click(at, self.first_user_id + i, False) for i, at in enumerate(firsts)]
        for _ in range(self.repeats):
            i = rng.randrange(self.users)
            at = firsts[i] + rng.expovariate(1 / REPEAT_DELAY_S)
            if at >= self.seconds:  # too late for the run: somewhere between the first click and its end
                at = firsts[i] + rng.random() * (self.seconds - firsts[i])
            clicks.append(Click(at, self.first_user_id + i, True))
        clicks.sort()
        return clicks

    def _first_click_at(self, rng: random.Random) -> float:
        if self.shape == "flat":
            return rng.random() * self.seconds
        # exponential with a mean of a quarter of the run, cut at its end (inverse of the truncated CDF)
        return -math.log(1 - rng.random() * (1 - math.exp(-4))) * self.seconds / 4
