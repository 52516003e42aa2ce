"""Who wins: the first-come-first-served rule, free of I/O so it can be tested on its own.

For one campaign, requests are taken in log order. A user's first request wins while stock lasts
(SUCCESS) and loses once it is gone (FAIL); any later request of the same user is a DUPLICATE.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass, field

from fcfs.schema import Outcome


@dataclass(slots=True)
class Tally:
    """The decisions of one batch for one campaign, and the stock they leave."""

    outcomes: list[Outcome] = field(default_factory=list)
    stock_left: int = 0
    successes: int = 0
    fails: int = 0
    duplicates: int = 0


def decide_batch(stock: int, prior_participants: Set[int], user_ids: Iterable[int]) -> Tally:
    """Decide the requests of `user_ids` (in log order) against `stock` and the users seen before."""
    if stock < 0:
        raise ValueError("stock cannot be negative")
    seen = set(prior_participants)
    tally = Tally(stock_left=stock)
    append = tally.outcomes.append
    for user_id in user_ids:
        if user_id in seen:
            append(Outcome.DUPLICATE)
            tally.duplicates += 1
            continue
        seen.add(user_id)
        if tally.stock_left > 0:
            tally.stock_left -= 1
            tally.successes += 1
            append(Outcome.SUCCESS)
        else:
            tally.fails += 1
            append(Outcome.FAIL)
    return tally
