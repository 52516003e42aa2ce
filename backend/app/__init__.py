"""The API's plumbing: the FastAPI app, its server, dependencies, errors, observability, background jobs."""
