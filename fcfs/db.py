"""Database engines: one pooled engine per process, and helpers around database URLs."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from fcfs.settings import Settings, get_settings


def utcnow() -> dt.datetime:
    """Now as a naive UTC datetime, the form every timestamp column stores."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def placeholders(n: int) -> str:
    """`%s, %s, ...`: n positional parameters for an IN list of plain SQL."""
    return ", ".join(["%s"] * n)


def make_engine(
    url: str | None = None,
    *,
    isolation_level: str | None = None,
    pool_size: int | None = None,
    pooled: bool = True,
    settings: Settings | None = None,
) -> Engine:
    """An engine with liveness checks; `READ COMMITTED` where a transaction must see others' commits. Not
    `pooled`: every connection its own, closed when given back (for connections held long, e.g. a lock's).
    The URL and pool sizes come from `settings` (the process's own unless given)."""
    settings = settings or get_settings()
    kwargs: dict[str, object] = {}
    if isolation_level:
        kwargs["isolation_level"] = isolation_level
    if pooled:
        kwargs.update(
            pool_pre_ping=True,
            pool_recycle=3600,
            pool_size=pool_size or settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=10,
        )
    else:
        kwargs["poolclass"] = NullPool
    return create_engine(
        url or settings.database_url,
        connect_args={"connect_timeout": 5, "read_timeout": 30, "write_timeout": 30},
        **kwargs,
    )


def release_lock(conn: Connection, name: str, close: bool = True) -> None:
    """Release the database's named lock `name` held on `conn` (and close it). A connection that cannot say
    RELEASE_LOCK is discarded, never put back in the pool: its session, which holds the lock, ends with it."""
    try:
        conn.rollback()  # a transaction an error left open
        conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})
    except BaseException:
        conn.invalidate()
        raise
    finally:
        if close:
            conn.close()


def short_error(exc: BaseException, limit: int = 300) -> str:
    """The first line of a database error (the driver's message, not SQLAlchemy's wrapper), for logs and records."""
    text = str(getattr(exc, "orig", None) or exc)
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


@lru_cache
def get_engine() -> Engine:
    """The process's pooled engine, made once from its settings."""
    return make_engine()


def ping(engine: Engine) -> None:
    """A round trip to the database (raises when it cannot be reached)."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def server_url(url: str) -> tuple[str, str]:
    """Split a database URL into (URL of the server without a database, database name)."""
    parsed = make_url(url)
    return parsed.set(database="").render_as_string(hide_password=False), parsed.database or ""
