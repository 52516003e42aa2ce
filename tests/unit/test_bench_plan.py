"""`python -m bench.all` re-runs every experiment and benchmark that writes a page, and each page it names is
one the docs have."""

from __future__ import annotations

import datetime as dt

from bench.all import PLAN
from bench.lookups import bound, bucket_quantiles, epoch
from tests.support import ROOT

TOOLS = {"__init__", "all", "baselines", "common", "generate", "loadgen"}  # not experiments: what they use


def test_every_experiment_is_in_the_plan() -> None:
    experiments = {p.stem for p in (ROOT / "bench").glob("*.py")} - TOOLS
    assert {e.name for e in PLAN} == experiments


def test_every_page_of_the_plan_exists() -> None:
    for e in PLAN:
        assert (ROOT / "docs" / e.page).exists(), e.page


def test_held_answers_quantiles_come_from_the_histograms_difference() -> None:
    before = {0.1: 5.0, 0.5: 5.0, 1.0: 5.0, float("inf"): 5.0}  # answers of an earlier round
    after = {0.1: 15.0, 0.5: 103.0, 1.0: 104.0, float("inf"): 105.0}
    assert bucket_quantiles(before, after) == {"answers": 100, "p50_at_most_s": 0.5, "p99_at_most_s": 1.0}
    assert bucket_quantiles(after, after)["p99_at_most_s"] is None  # nothing answered between the readings
    assert [bound(0.5), bound(float("inf")), bound(None)] == ["0.5 s", "over 30 s", "-"]


def test_vegetas_times_with_nanoseconds_become_epoch_seconds() -> None:
    at = dt.datetime(2026, 12, 7, 15, 24, 9, tzinfo=dt.UTC).timestamp()
    assert abs(epoch("2026-12-07T15:24:09.166569076Z") - (at + 0.166569076)) < 1e-6
    assert epoch("2026-12-07T15:24:09Z") == at
    assert abs(epoch("2026-12-07T16:24:09.5+01:00") - (at + 0.5)) < 1e-6
