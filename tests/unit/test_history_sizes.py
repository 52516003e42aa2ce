"""The demo generator's campaign sizes: exactly the rows asked for, spread as the jitter says."""

from __future__ import annotations

import random

import pytest

from fcfs.history import campaign_sizes


@pytest.mark.parametrize(("rows", "campaigns"), [(2000, 4), (2000, 3), (1_000_000, 300), (301, 300), (7, 7)])
def test_sizes_add_up_to_the_rows_asked_for(rows: int, campaigns: int) -> None:
    sizes = campaign_sizes(random.Random(rows), rows, campaigns, jitter=0.3)
    assert len(sizes) == campaigns and sum(sizes) == rows and min(sizes) >= 1


def test_sizes_stay_within_the_jitter_of_the_average() -> None:
    sizes = campaign_sizes(random.Random(1), 100_000, 10, jitter=0.3)
    average = 100_000 / 10
    assert all(0.6 * average <= n <= 1.4 * average for n in sizes), sizes  # ±30% of the weights, renormalised
    assert len(set(sizes)) > 1  # jittered, not all the average


def test_fewer_rows_than_campaigns_gives_one_each() -> None:
    assert campaign_sizes(random.Random(1), 3, 5, jitter=0.3) == [1, 1, 1, 1, 1]
