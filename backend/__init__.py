"""The HTTP API (FastAPI): takes participation requests, answers status, serves the operators."""
