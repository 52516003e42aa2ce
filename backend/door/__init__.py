"""The hot path: the participation door and what it needs."""
