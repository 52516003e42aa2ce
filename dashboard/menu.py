"""The dashboard's pages, for the menu (app.py) and for links between pages (`st.page_link(live())`)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit.navigation.page import StreamlitPage

VIEWS = Path(__file__).resolve().parent / "views"


def live() -> StreamlitPage:
    return st.Page(VIEWS / "live.py", title="Live", icon=":material/monitoring:", default=True)


def pages() -> list[StreamlitPage]:
    return [
        live(),
        st.Page(VIEWS / "control.py", title="Control", icon=":material/tune:"),
        st.Page(VIEWS / "analytics.py", title="Analytics", icon=":material/bar_chart:"),
        st.Page(VIEWS / "kafka.py", title="Kafka", icon=":material/hub:"),
    ]
