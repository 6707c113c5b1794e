"""The embedded PostgreSQL (pgserver) used when DATABASE_URL is unset."""

from __future__ import annotations

import signal
import warnings
from pathlib import Path

import psutil
import structlog

from domain.database import to_async_url
from domain.settings import Settings

log = structlog.get_logger(__name__)

# How long a server left behind by an earlier install gets to shut down.
ORPHAN_SHUTDOWN_SECONDS = 60


def embedded_database_url(data_dir: Path) -> str:
    """Start (or reuse) a PostgreSQL server keeping its data in ``data_dir``.

    pgserver keeps one server per data directory, shared between processes, and
    leaves it running so data survive restarts of the API.
    """
    with warnings.catch_warnings():
        # Without XDG_RUNTIME_DIR (containers, CI, a root shell) platformdirs warns and
        # falls back to /tmp/runtime-<uid>, where pgserver keeps only its lock file:
        # fine, and no reason to greet every `serve --demo` with a warning.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import pgserver  # imported lazily: only the embedded mode needs the binaries

    pg_dir = data_dir / "pgdata"
    pg_dir.mkdir(parents=True, exist_ok=True)
    stop_orphaned_server(pg_dir)
    server = pgserver.get_server(pg_dir, cleanup_mode=None)
    uri = server.get_uri()
    log.info("embedded_postgres_ready", data_dir=str(pg_dir))
    return to_async_url(uri)


def stop_orphaned_server(pg_dir: Path) -> bool:
    """Stop the server running on ``pg_dir`` if its own files are gone; True if it did.

    The data directory outlives the virtualenv that started its server (it is in the
    user's data directory). When that virtualenv is deleted, the server keeps running
    without its share files, and every new connection fails on
    ``invalid value for parameter "TimeZone"``. pgserver would reuse it as it is.
    Stopped (fast shutdown: sessions end, data are checkpointed), it is started again
    from the binaries installed now, on the same data.
    """
    process = _postmaster(pg_dir)
    if process is None:
        return False
    try:
        executable = process.exe()
    except psutil.Error:
        return False  # gone meanwhile, or not ours to inspect: pgserver decides
    if not executable or Path(executable).exists():
        return False  # unreadable (empty) counts as present: only a proven orphan stops
    log.warning("embedded_postgres_orphaned", pid=process.pid, executable=executable)
    if not _fast_shutdown(process):
        raise RuntimeError(
            f"The embedded PostgreSQL (pid {process.pid}) was started from files that are "
            f"gone ({executable}) and did not stop within {ORPHAN_SHUTDOWN_SECONDS} s; "
            "stop it, then start again."
        )
    return True


def stop_embedded_server(data_dir: Path) -> bool:
    """Stop the embedded server keeping its data in ``data_dir`` (the tests' own, at
    the end of a session); True if one was running and stopped."""
    process = _postmaster(data_dir / "pgdata")
    return process is not None and _fast_shutdown(process)


def _postmaster(pg_dir: Path) -> psutil.Process | None:
    """The running postmaster of ``pg_dir``, if there is one."""
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pg_dir)
    process: psutil.Process | None = info.process if info is not None else None
    if process is None or not process.is_running():
        return None
    try:
        # The pid file may be stale and its pid another program's: only a postmaster
        # of this data directory counts.
        ours = process.name() == "postgres" and str(pg_dir.resolve()) in process.cmdline()
    except psutil.Error:
        return None
    return process if ours else None


def _fast_shutdown(process: psutil.Process) -> bool:
    """SIGINT: sessions end, data are checkpointed. True once the process is gone."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(ORPHAN_SHUTDOWN_SECONDS)
    except psutil.TimeoutExpired:
        return False
    return True


def resolve_database_url(settings: Settings) -> str:
    """DATABASE_URL when it is set, else the embedded server (started if need be)."""
    if settings.database_url:
        return to_async_url(settings.database_url)
    return embedded_database_url(settings.data_dir)
