"""Fuzzing the served OpenAPI document with schemathesis: no 5xx, every answer's status code is documented
for its operation and its body matches the documented schema (the envelope with its typed data, or the error
envelope), and the stateful phase follows the document's links (create a campaign → take part → look the
request up; start an aggregation → its status)."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from fcfs.settings import Settings
from tests.support import ADMIN_TOKEN
from tests.support.processes import Processes


@pytest.mark.parametrize("with_token", [True, False], ids=["admin", "anonymous"])
def test_no_server_errors_and_responses_match_the_schema(
    settings: Settings, processes: Processes, with_token: bool, tmp_path: Path
) -> None:
    # bounded: small bulk loads and demo histories; crowds sent to a closed port (and killed afterwards); look-ups
    # held half a second at most (no worker decides here: every held look-up would last its waitSeconds)
    api = processes.api(
        settings,
        BULK_MAX_COUNT="500",
        DEMO_MAX_DAYS="1",
        DEMO_MAX_ROWS="100",
        CROWD_TARGET_URL="http://127.0.0.1:9",
        WAIT_MAX_S="0.5",
    )
    st = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert st, "schemathesis is a development dependency"
    args = [
        st,
        "run",
        f"{api.base_url}/openapi.json",
        "--checks",
        "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        "40",  # per operation and phase: the suite's run stays under half an hour
        "--seed",
        "20261124",
        "--request-timeout",
        "30",
        "--report-dir",
        str(tmp_path),
    ]
    if with_token:
        args += ["-H", f"Authorization: Bearer {ADMIN_TOKEN}"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:]
    assert " passed" in result.stdout and "Scenarios:" in result.stdout  # the stateful phase followed the links


EAST, WEST = dt.timezone(dt.timedelta(hours=1)), dt.timezone(-dt.timedelta(hours=5))


def test_any_date_or_time_is_answered_without_a_server_error(settings: Settings, processes: Processes) -> None:
    """Dates and times across their whole range, at the edges too (schemathesis draws few of those):
    every one is an answer (2xx, 400, 409, 422), never a 500."""
    api = processes.api(settings)
    offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
    with api.client(admin=True) as client:

        @hypothesis_settings(max_examples=80, deadline=None, database=None)
        @given(day=st.dates(), other=st.dates())
        @example(day=dt.date(1, 1, 1), other=dt.date(1, 1, 2))
        @example(day=dt.date(9999, 12, 31), other=dt.date(1, 1, 1))
        def dates(day: dt.date, other: dt.date) -> None:
            for method, path, params in (
                ("GET", "/api/admin/stats/raw", {"date": day.isoformat()}),
                ("GET", "/api/admin/stats/daily", {"date": day.isoformat()}),
                ("GET", "/api/admin/stats/daily", {"from": day.isoformat(), "to": other.isoformat()}),
                ("POST", "/api/admin/batch/aggregate", {"date": day.isoformat()}),
            ):
                r = client.request(method, path, params=params)
                assert r.status_code in (200, 202, 400, 409), (path, params, r.text)

        @hypothesis_settings(max_examples=60, deadline=None, database=None)
        @given(starts=st.datetimes(timezones=offsets), ends=st.datetimes(timezones=offsets))
        @example(starts=dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))), ends=dt.datetime(2030, 1, 1))
        @example(
            starts=dt.datetime(2030, 1, 1),
            ends=dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(-dt.timedelta(hours=5))),
        )
        def windows(starts: dt.datetime, ends: dt.datetime) -> None:
            body = {
                "name": "fuzzed window",
                "totalStock": 1,
                "startsAt": starts.isoformat(),
                "endsAt": ends.isoformat(),
            }
            r = client.post("/api/admin/campaigns", json=body)
            assert r.status_code in (201, 422), (body, r.text)

        dates()
        windows()
