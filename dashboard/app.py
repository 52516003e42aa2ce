"""The dashboard: `streamlit run dashboard/app.py` (the `dashboard` line of the Procfile, port 8501)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

st.set_page_config(page_title="FCFS campaigns", page_icon=":material/bolt:", layout="wide")
pages = ROOT / "dashboard" / "pages"
navigation = st.navigation(
    [
        st.Page(pages / "live.py", title="Live", icon=":material/monitoring:", default=True),
        st.Page(pages / "control.py", title="Control", icon=":material/tune:"),
        st.Page(pages / "analytics.py", title="Analytics", icon=":material/bar_chart:"),
        st.Page(pages / "kafka.py", title="Kafka", icon=":material/hub:"),
    ]
)
navigation.run()
