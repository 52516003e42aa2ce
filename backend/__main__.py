"""`python -m backend`: serve the API (see backend/serve.py)."""

from backend.serve import main

main()
