"""The operators' sign-in: no page of the dashboard shows before it.

The password is `DASHBOARD_PASSWORD`, or the admin token when that is not set; it is compared in
constant time and never leaves the server: the session remembers only that it signed in (a new
browser session signs in again). Wrong passwords are limited for the whole dashboard process, not
per session (a new session is one reload away): after 5 in a minute, sign-in waits for the minute to
pass.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections import deque

import streamlit as st

from fcfs.settings import get_settings

MAX_FAILURES = 5
WINDOW_S = 60.0
_failures: deque[float] = deque()
_lock = threading.Lock()


def signed_in() -> bool:
    return bool(st.session_state.get("signed-in"))


def _password() -> str:
    settings = get_settings()
    return settings.dashboard_password.get_secret_value() or settings.admin_token


def _wait_s(now: float) -> float:
    """Seconds until another attempt is allowed (0: now)."""
    with _lock:
        while _failures and now - _failures[0] > WINDOW_S:
            _failures.popleft()
        return WINDOW_S - (now - _failures[0]) if len(_failures) >= MAX_FAILURES else 0.0


def sign_in_page() -> None:
    st.title("FCFS campaigns")
    with st.form("sign-in"):
        given = st.text_input(
            "Password", type="password", help="DASHBOARD_PASSWORD, or the admin token when it is not set"
        )
        submitted = st.form_submit_button("Sign in", icon=":material/login:")
    if not submitted:
        return
    now = time.monotonic()
    wait = _wait_s(now)
    if wait > 0:
        st.error(f"Too many wrong passwords: try again in {math.ceil(wait)} s.")
        return
    if secrets.compare_digest(given.encode(), _password().encode()):
        st.session_state["signed-in"] = True
        st.rerun()
    with _lock:
        _failures.append(now)
    st.error("Wrong password.")


def sign_out_button() -> None:
    if st.sidebar.button("Sign out", icon=":material/logout:"):
        st.session_state.clear()
        st.rerun()
