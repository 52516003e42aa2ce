"""The operators' dashboard (Streamlit): live campaign view, controls, analytics, Kafka. Talks to the API only."""
