"""The embedded PostgreSQL (pgserver) used when DATABASE_URL is unset."""

from __future__ import annotations

from pathlib import Path

import structlog

log = structlog.get_logger(__name__)


def embedded_database_url(data_dir: Path) -> str:
    """Start (or reuse) a PostgreSQL server keeping its data in ``data_dir``.

    pgserver keeps one server per data directory, shared between processes, and
    leaves it running so data survive restarts of the API.
    """
    import pgserver  # imported lazily: only the embedded mode needs the binaries

    pg_dir = data_dir / "pgdata"
    pg_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pg_dir, cleanup_mode=None)
    uri = server.get_uri()
    log.info("embedded_postgres_ready", data_dir=str(pg_dir))
    return to_async_url(uri)


def to_async_url(url: str) -> str:
    """Normalise a libpq URL to SQLAlchemy's asyncpg dialect.

    asyncpg takes a Unix socket directory as ``host`` in the query string, the
    form pgserver hands out, so that part is kept as is.
    """
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url.split('@')[-1]}")
