"""`python -m backend`: serve the API (see backend/app/serve.py)."""

from backend.app.serve import main

main()
