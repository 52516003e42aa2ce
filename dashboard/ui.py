"""Shared page pieces: the API client per session, friendly errors, and the campaign picker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from dashboard.client import ApiClient, BackendError, BackendUnavailable

T = TypeVar("T")


def api() -> ApiClient:
    if "api" not in st.session_state:
        st.session_state["api"] = ApiClient.from_settings()
    client: ApiClient = st.session_state["api"]
    return client


def attempt(action: Callable[[], T], what: str) -> T | None:
    """Run a backend call; on failure show a clear message (no traceback) and return None."""
    try:
        return action()
    except BackendUnavailable as exc:
        st.warning(f"The backend is unreachable — {exc}. This page retries by itself.", icon=":material/cloud_off:")
        st.session_state["backend-down"] = True
    except BackendError as exc:
        st.error(f"Could not {what}: {exc.message}" + (f" ({exc.code})" if exc.code else ""))
    return None


def table(items: list[dict[str, Any]], columns: dict[str, Callable[[dict[str, Any]], Any]]) -> None:
    """A full-width table of `items`, one column per label, each computed from an item."""
    st.dataframe(
        [{label: value(item) for label, value in columns.items()} for item in items],
        hide_index=True,
        width="stretch",
    )


def field(name: str) -> Callable[[dict[str, Any]], Any]:
    """A table column that shows one field of the item as is."""
    return lambda item: item[name]


def whole_number(text: str | None) -> int | None:
    """`text` as a whole number written in ASCII digits (at most 19 of them), else None: `str.isdigit` alone
    accepts "²" or "٣", which `int` refuses or reads otherwise."""
    if text and text.isascii() and text.isdigit() and len(text) <= 19:
        return int(text)
    return None


def pick_campaign(campaigns: list[dict[str, Any]], key: str = "campaign") -> int | None:
    """A select box of campaigns, newest first; `?campaign=ID` in the address preselects one."""
    if not campaigns:
        st.info("No campaign yet — create one on the Control page.")
        return None
    ids = [c["id"] for c in campaigns]
    wanted = whole_number(st.query_params.get("campaign"))
    index = ids.index(wanted) if wanted in ids else 0
    labels = {
        c["id"]: f"#{c['id']} · {c['name']} · stock {c['totalStock']:,}"
        + (" · synchronous" if c.get("mode") == "SYNC" else "")
        for c in campaigns
    }
    chosen = st.selectbox("Campaign", ids, index=index, format_func=labels.__getitem__, key=key)
    if chosen is not None:
        st.query_params["campaign"] = str(chosen)
    return int(chosen) if chosen is not None else None


def recover_when_back() -> None:
    """If a call of this run found the API down, check every 2 s and rerun the page once it answers."""
    if not st.session_state.pop("backend-down", False):
        return

    @st.fragment(run_every=2)
    def watch() -> None:
        try:
            api().live()
        except (BackendUnavailable, BackendError):
            return
        st.rerun()

    watch()
