"""`python -m bench.all` re-runs every experiment and benchmark that writes a page, and each page it names is
one the docs have."""

from __future__ import annotations

from bench.all import PLAN
from tests.support import ROOT

TOOLS = {"__init__", "all", "baselines", "common", "generate", "loadgen"}  # not experiments: what they use


def test_every_experiment_is_in_the_plan() -> None:
    experiments = {p.stem for p in (ROOT / "bench").glob("*.py")} - TOOLS
    assert {e.name for e in PLAN} == experiments


def test_every_page_of_the_plan_exists() -> None:
    for e in PLAN:
        assert (ROOT / "docs" / e.page).exists(), e.page
