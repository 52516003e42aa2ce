"""The operators' sign-in: no page of the dashboard shows before it.

The password is `DASHBOARD_PASSWORD`, or the admin token when that is not set; it is compared in constant
time and never leaves the server.

Wrong passwords slow the one guessing, not everyone: each client (its address; behind `TRUSTED_PROXIES` the
one they name) has its own count of failures in the last 15 minutes, and from the third on every attempt of
that client — right or wrong — is checked only after a wait that doubles with each failure (2, 4, 8 … 30 s).
Nobody else waits, and the right password is never refused: it is accepted once the wait is over.

A signed-in browser gets a cookie (`fcfs_dashboard`: an expiry and a random id, signed with HMAC-SHA256
under a key derived from the password, so a new password ends every session), good for
`DASHBOARD_SESSION_HOURS`: a reload, or a `?campaign=ID` link opened in the same browser, keeps the operator
signed in. Signing out revokes the id in this process and clears the cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import deque

import streamlit as st

from fcfs.clients import ClientAddresses
from fcfs.settings import get_settings

COOKIE = "fcfs_dashboard"
FREE_FAILURES = 2  # failures a client may make before its attempts wait
MAX_WAIT_S = 30.0
WINDOW_S = 15 * 60.0
MAX_CLIENTS = 10_000  # clients whose failures are remembered at once (the oldest forgotten first)
_failures: dict[str, deque[float]] = {}
_revoked: dict[str, float] = {}  # session id -> its expiry (forgotten after it)
_lock = threading.Lock()
sleep = time.sleep  # tests record the waits instead


def signed_in() -> bool:
    if st.session_state.get("signed-in"):
        return True
    session = _valid_session(st.context.cookies.get(COOKIE))
    if session is not None:
        st.session_state["signed-in"], st.session_state["session-id"] = True, session
        return True
    return False


def _password() -> str:
    settings = get_settings()
    return settings.dashboard_password.get_secret_value() or settings.admin_token.get_secret_value()


def _key() -> bytes:
    return hashlib.sha256(b"fcfs-dashboard-session:" + _password().encode()).digest()


def session_cookie(session_id: str, expires: float) -> str:
    body = base64.urlsafe_b64encode(json.dumps([int(expires), session_id]).encode()).decode().rstrip("=")
    mac = hmac.new(_key(), body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def _valid_session(cookie: str | None, now: float | None = None) -> str | None:
    """The session id of a cookie this dashboard signed, unexpired and not signed out; else None."""
    if not cookie or cookie.count(".") != 1 or len(cookie) > 512:
        return None
    body, mac = cookie.split(".")
    if not hmac.compare_digest(mac, hmac.new(_key(), body.encode(), hashlib.sha256).hexdigest()):
        return None
    try:
        expires, session_id = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except ValueError:
        return None
    now = time.time() if now is None else now
    with _lock:
        revoked = session_id in _revoked
    return None if revoked or not isinstance(session_id, str) or expires <= now else session_id


def _client() -> str:
    settings = get_settings()
    forwarded = st.context.headers.get("X-Forwarded-For")
    return ClientAddresses(settings.trusted_proxies).of(st.context.ip_address or "localhost", forwarded)


def wait_before_checking(client: str, now: float) -> float:
    """Seconds this client waits before its attempt is checked: 0 for its first FREE_FAILURES failures in
    WINDOW_S, then 2, 4, 8 … MAX_WAIT_S."""
    with _lock:
        recent = _failures.get(client)
        if recent is None:
            return 0.0
        while recent and now - recent[0] > WINDOW_S:
            recent.popleft()
        over = len(recent) - FREE_FAILURES
        return 0.0 if over < 0 else min(2.0 ** (over + 1), MAX_WAIT_S)


def _failed(client: str, now: float) -> None:
    with _lock:
        if client not in _failures and len(_failures) >= MAX_CLIENTS:
            del _failures[next(iter(_failures))]
        _failures.setdefault(client, deque(maxlen=64)).append(now)


def sign_in_page() -> None:
    st.title("FCFS campaigns")
    with st.form("sign-in"):
        given = st.text_input(
            "Password", type="password", help="DASHBOARD_PASSWORD, or the admin token when it is not set"
        )
        submitted = st.form_submit_button("Sign in", icon=":material/login:")
    if not submitted:
        return
    client = _client()
    wait = wait_before_checking(client, time.monotonic())
    if wait > 0:
        with st.spinner(f"Several wrong passwords from here: checking in {wait:.0f} s …"):
            sleep(wait)
    if secrets.compare_digest(given.encode(), _password().encode()):
        session_id = secrets.token_urlsafe(16)
        st.session_state["signed-in"], st.session_state["session-id"] = True, session_id
        st.session_state["set-cookie"] = True
        st.rerun()
    _failed(client, time.monotonic())
    st.error("Wrong password.")


def keep_signed_in() -> None:
    """Once after signing in: the browser gets its session cookie (set by a script: Streamlit sets no cookies)."""
    if not st.session_state.pop("set-cookie", False):
        return
    hours = get_settings().dashboard_session_hours
    expires = time.time() + hours * 3600
    value = session_cookie(st.session_state["session-id"], expires)
    _script(f"{COOKIE}={value}; Max-Age={int(hours * 3600)}")


def sign_out_button() -> None:
    if st.sidebar.button("Sign out", icon=":material/logout:"):
        session_id = st.session_state.get("session-id")
        if session_id:
            with _lock:
                now = time.time()
                for old in [s for s, until in _revoked.items() if until < now]:
                    del _revoked[old]
                _revoked[session_id] = now + get_settings().dashboard_session_hours * 3600
        st.session_state.clear()
        st.session_state["clear-cookie"] = True
        st.rerun()


def forget_cookie() -> None:
    """After signing out: the browser's cookie is cleared too (it is revoked already)."""
    if st.session_state.pop("clear-cookie", False):
        _script(f"{COOKIE}=; Max-Age=0")


def _script(cookie: str) -> None:
    secure = "(location.protocol === 'https:' ? '; Secure' : '')"
    st.html(
        f"<script>document.cookie = '{cookie}; Path=/; SameSite=Strict' + {secure};</script>",
        unsafe_allow_javascript=True,
    )
