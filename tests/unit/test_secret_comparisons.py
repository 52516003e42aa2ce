"""Secrets are compared in constant time: the admin token, the metrics token, the dashboard password and
request-id signatures go through `compare_digest`, and no `==`/`!=`/`in` anywhere touches one."""

from __future__ import annotations

import ast
import asyncio
import hmac
import re
import secrets
from pathlib import Path

import pytest
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import SecretStr

from backend.app.deps import require_admin
from backend.app.errors import ApiError
from fcfs.request_ids import RequestIdSigner
from fcfs.settings import Settings
from tests.support import ROOT

SECRET = re.compile(r"admin_token|metrics_token|password|secret|_sign\(|signature", re.I)
PACKAGES = ("backend", "dashboard", "fcfs", "worker", "batch")


def _sources() -> list[Path]:
    return [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]


def test_no_comparison_operator_touches_a_secret() -> None:
    offenders = []
    for path in _sources():
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Compare):
                text = ast.get_source_segment(source, node) or ""
                operands = [node.left, *node.comparators]
                # `x is None` / truthiness are not comparisons of a secret's value
                if SECRET.search(text) and not all(
                    isinstance(op, ast.Constant) and op.value is None for op in operands[1:]
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text}")
    assert not offenders, offenders


def test_every_secret_check_calls_compare_digest() -> None:
    checks = {
        "backend/app/deps.py": "settings.admin_token",
        "backend/app/observability.py": "token.encode()",
        "dashboard/auth.py": "_password()",
        "fcfs/request_ids.py": "self._sign(",
    }
    for relative, secret in checks.items():
        source = (ROOT / relative).read_text()
        calls = [
            ast.get_source_segment(source, node) or ""
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "compare_digest"
        ]
        assert any(secret in call for call in calls), (relative, calls)


def test_the_admin_check_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Behaviour, not only text: the check's answer comes from compare_digest, for a right and a wrong token."""
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(secrets, "compare_digest", recording)
    settings = Settings(_env_file=None, admin_token=SecretStr("the-right-token-0123456789"))  # type: ignore[call-arg]
    asyncio.run(
        require_admin(
            settings, HTTPAuthorizationCredentials(scheme="Bearer", credentials=settings.admin_token.get_secret_value())
        )
    )
    for wrong in ("the-right-token-012345678", "x", ""):
        with pytest.raises(ApiError) as refused:
            credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=wrong) if wrong else None
            asyncio.run(require_admin(settings, credentials))
        assert refused.value.status_code == 401
    assert seen == [
        (b"the-right-token-0123456789", b"the-right-token-0123456789"),
        (b"the-right-token-012345678", b"the-right-token-0123456789"),
        (b"x", b"the-right-token-0123456789"),
        (b"", b"the-right-token-0123456789"),
    ]


def test_request_ids_are_checked_with_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append(a)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    signer = RequestIdSigner("test-secret")
    issued = signer.issue(7, 42)
    assert signer.verify(7, issued.request_id) is not None
    assert signer.verify(8, issued.request_id) is None
    assert len(calls) == 2
