"""The first-come-first-served rule on its own, without I/O."""

from __future__ import annotations

import random

import pytest

from fcfs.decision import decide_batch
from fcfs.schema import Outcome

S, F, D = Outcome.SUCCESS, Outcome.FAIL, Outcome.DUPLICATE


def test_first_distinct_users_win_while_stock_lasts() -> None:
    tally = decide_batch(2, set(), [7, 8, 7, 9, 8, 10])
    assert tally.outcomes == [S, S, D, F, D, F]
    assert (tally.stock_left, tally.successes, tally.fails, tally.duplicates) == (0, 2, 2, 2)


def test_users_seen_in_earlier_batches_are_duplicates() -> None:
    tally = decide_batch(5, {1, 2}, [1, 3, 2, 3])
    assert tally.outcomes == [D, S, D, D]
    assert tally.stock_left == 4


def test_sold_out_campaign_only_fails_new_users() -> None:
    assert decide_batch(0, {4}, [4, 5, 5]).outcomes == [D, F, D]


def test_negative_stock_is_refused() -> None:
    with pytest.raises(ValueError):
        decide_batch(-1, set(), [1])


def test_prior_participants_are_not_mutated() -> None:
    prior = {1}
    decide_batch(3, prior, [2, 3])
    assert prior == {1}


@pytest.mark.parametrize("seed", range(50))
def test_any_interleaving_gives_the_first_stock_distinct_users(seed: int) -> None:
    rng = random.Random(seed)
    stock = rng.randint(0, 30)
    users = [rng.randint(1, 40) for _ in range(rng.randint(0, 200))]
    first_distinct = list(dict.fromkeys(users))
    # split into random batches: the outcome must not depend on where batches begin and end
    outcomes: list[Outcome] = []
    seen: set[int] = set()
    left = stock
    i = 0
    while i < len(users):
        j = i + rng.randint(1, 25)
        tally = decide_batch(left, seen, users[i:j])
        outcomes += tally.outcomes
        seen.update(users[i:j])
        left = tally.stock_left
        i = j
    winners = [u for u, o in zip(users, outcomes, strict=True) if o is S]
    assert winners == first_distinct[:stock]
    assert left == stock - len(winners) >= 0
    assert outcomes.count(D) == len(users) - len(first_distinct)
