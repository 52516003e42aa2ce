"""A participation request as the look-up reads it: its decision, if the worker has recorded one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Row, select

from fcfs.schema import participation_history

h = participation_history.c


def decision(engine: Engine, *, request_id: str) -> Row[Any, Any] | None:
    """(status, user_id) of the decided request, None while it is not decided."""
    with engine.connect() as conn:
        return conn.execute(select(h.status, h.user_id).where(h.request_id == request_id)).first()
