"""The operators' dashboard (Streamlit); not part of this release yet."""
