"""Fuzzing the served OpenAPI document with schemathesis: no 5xx, responses match the documented schemas."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fcfs.settings import Settings
from tests.support import ADMIN_TOKEN, Processes


@pytest.mark.parametrize("with_token", [True, False], ids=["admin", "anonymous"])
def test_no_server_errors_and_responses_match_the_schema(
    settings: Settings, processes: Processes, with_token: bool, tmp_path: Path
) -> None:
    api = processes.api(settings, BULK_MAX_COUNT="500")
    st = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert st, "schemathesis is a development dependency"
    args = [
        st,
        "run",
        f"{api.base_url}/openapi.json",
        "--checks",
        "not_a_server_error,response_schema_conformance,content_type_conformance",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "40",
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
    assert " passed" in result.stdout
