"""One error catalogue: every code the API answers is built in `backend/app/errors.py` with the status the
catalogue gives it, a refusal of input lists its fields, and the API page documents every code."""

from __future__ import annotations

import ast
import re

from backend.app.errors import CODES, ApiError, invalid, invalid_json
from tests.support import ROOT


def calls(name: str) -> list[str]:
    """Where in backend/ (outside the catalogue) `name(...)` is called with an error code."""
    found = []
    for path in (ROOT / "backend").rglob("*.py"):
        if path == ROOT / "backend" / "app" / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == name:
                coded = len(node.args) >= 4 or any(k.arg == "error_code" for k in node.keywords)
                if name == "ApiError" or coded:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_error_answer_is_built_outside_the_catalogue() -> None:
    assert calls("ApiError") == []
    assert calls("envelope") == []
    assert calls("envelope_bytes") == []


def test_a_refusal_of_input_lists_its_fields() -> None:
    refused = invalid("userId", "Field required")
    assert (refused.status_code, refused.error_code) == (422, "VALIDATION_ERROR")
    assert refused.data == {"errors": [{"field": "userId", "problem": "Field required"}]}
    assert invalid_json().data == {"errors": []}


def test_a_code_comes_with_its_status_and_nothing_else_exists() -> None:
    assert ApiError("RATE_LIMITED", "x").status_code == 429
    try:
        ApiError("MADE_UP", "x")
        raise AssertionError("a code outside the catalogue was built")
    except KeyError:
        pass


def test_the_api_page_documents_every_code_with_its_status() -> None:
    rows = [line for line in (ROOT / "docs" / "api.md").read_text().splitlines() if re.match(r"\| \d{3} \|", line)]
    for code, status in CODES.items():
        assert any(row.startswith(f"| {status} |") and f"`{code}`" in row for row in rows), code
