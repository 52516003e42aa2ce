"""The dashboard: `streamlit run dashboard/app.py` (the `dashboard` line of the Procfile, port 8501)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard.auth import sign_in_page, sign_out_button, signed_in  # noqa: E402

st.set_page_config(page_title="FCFS campaigns", page_icon=":material/bolt:", layout="wide")
# not "pages/": Streamlit would serve a folder of that name page by page, past this script and its sign-in
views = ROOT / "dashboard" / "views"
navigation = st.navigation(
    [
        st.Page(views / "live.py", title="Live", icon=":material/monitoring:", default=True),
        st.Page(views / "control.py", title="Control", icon=":material/tune:"),
        st.Page(views / "analytics.py", title="Analytics", icon=":material/bar_chart:"),
        st.Page(views / "kafka.py", title="Kafka", icon=":material/hub:"),
    ],
    position="sidebar" if signed_in() else "hidden",
)
if signed_in():
    sign_out_button()
    navigation.run()
else:  # whatever page was asked for, only the sign-in form runs until the password is given
    sign_in_page()
