"""Property-based: for any interleaving of users and any stock, winners are the first `stock` distinct users."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fcfs.decision import decide_batch
from fcfs.schema import Outcome

users = st.lists(st.integers(min_value=1, max_value=30), max_size=300)


@given(stock=st.integers(min_value=0, max_value=50), requests=users, cuts=st.lists(st.integers(1, 40), max_size=50))
def test_winners_are_the_first_distinct_users_however_batches_fall(
    stock: int, requests: list[int], cuts: list[int]
) -> None:
    outcomes: list[Outcome] = []
    seen: set[int] = set()
    left, i = stock, 0
    for size in [*cuts, len(requests) + 1]:
        batch = requests[i : i + size]
        tally = decide_batch(left, seen, batch)
        outcomes += tally.outcomes
        seen.update(batch)
        left, i = tally.stock_left, i + size
        if i >= len(requests):
            break
    distinct = list(dict.fromkeys(requests))
    assert [u for u, o in zip(requests, outcomes, strict=True) if o is Outcome.SUCCESS] == distinct[:stock]
    assert outcomes.count(Outcome.FAIL) == max(len(distinct) - stock, 0)
    assert outcomes.count(Outcome.DUPLICATE) == len(requests) - len(distinct)
    assert left == stock - min(stock, len(distinct)) >= 0


@given(stock=st.integers(min_value=0, max_value=20), prior=st.sets(st.integers(1, 30)), requests=users)
def test_earlier_participants_never_win_again(stock: int, prior: set[int], requests: list[int]) -> None:
    tally = decide_batch(stock, prior, requests)
    winners = [u for u, o in zip(requests, tally.outcomes, strict=True) if o is Outcome.SUCCESS]
    assert not set(winners) & prior
    assert len(winners) == len(set(winners)) <= stock
