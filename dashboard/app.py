"""The dashboard: `streamlit run dashboard/app.py` (the `dashboard` line of the Procfile, port 8501)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard.auth import forget_cookie, keep_signed_in, sign_in_page, sign_out_button, signed_in  # noqa: E402
from dashboard.menu import pages  # noqa: E402

st.set_page_config(page_title="FCFS campaigns", page_icon=":material/bolt:", layout="wide")
# not "pages/": Streamlit would serve a folder of that name page by page, past this script and its sign-in
navigation = st.navigation(
    pages(),
    position="sidebar" if signed_in() else "hidden",
)
if signed_in():
    keep_signed_in()
    sign_out_button()
    navigation.run()
else:  # whatever page was asked for, only the sign-in form runs until the password is given
    forget_cookie()
    sign_in_page()
