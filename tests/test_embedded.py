"""The embedded PostgreSQL (README's first command) survives a reinstall: a server left
running by a deleted virtualenv is stopped and started again from the current one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pgserver
import psutil
import pytest
from pgserver._commands import POSTGRES_BIN_PATH, pg_ctl  # type: ignore[attr-defined]  # pgserver sets it at import
from pgserver.utils import PostmasterInfo

from api.embedded import embedded_database_url, stop_embedded_server, stop_orphaned_server

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="a deleted executable is told apart through /proc"
)

# What the API's engine asks of every connection (domain/database.py).
SERVER_SETTINGS = {"TimeZone": "UTC"}


def _system_user() -> str | None:
    """Under root, pgserver runs PostgreSQL as an unprivileged user; so does the test."""
    return "pgserver" if os.geteuid() == 0 else None


def _let_server_user_in(*paths: Path) -> None:
    user = _system_user()
    if user is None:
        return
    from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

    entry = ensure_user_exists(user)
    assert entry is not None
    for path in paths:
        ensure_prefix_permissions(path)
        for root, dirs, files in os.walk(path):
            for name in (*dirs, *files):
                os.chown(Path(root) / name, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _run(*argv: str | Path) -> None:
    subprocess.run([str(a) for a in argv], check=True, capture_output=True, user=_system_user())


@pytest.fixture
def orphaned(pg_tmp: Path) -> Iterator[Path]:
    """A data directory whose server was started from an install deleted since: the
    state a user is in after ``rm -rf .venv`` and a new virtualenv."""
    # The binaries find their libraries relative to themselves (pgserver.libs beside
    # the package): the copy keeps that layout.
    site_packages = POSTGRES_BIN_PATH.parents[2]
    old_site_packages = pg_tmp / "old-venv" / "site-packages"
    old_install = old_site_packages / "pgserver" / "pginstall"
    shutil.copytree(POSTGRES_BIN_PATH.parent, old_install, symlinks=True)
    if (site_packages / "pgserver.libs").exists():
        shutil.copytree(site_packages / "pgserver.libs", old_site_packages / "pgserver.libs")
    data_dir = pg_tmp / "data"
    pg_dir = data_dir / "pgdata"
    pg_dir.mkdir(parents=True)
    _let_server_user_in(old_site_packages, pg_dir)
    bin_dir = old_install / "bin"
    _run(bin_dir / "initdb", "-D", pg_dir, "--auth=trust", "-U", "postgres")
    _run(
        bin_dir / "pg_ctl",
        "-D",
        pg_dir,
        "-w",
        "-o",
        '-h ""',
        "-o",
        f"-k {pg_dir}",
        "-l",
        pg_dir / "log",
        "start",
    )
    shutil.rmtree(pg_tmp / "old-venv")
    try:
        yield data_dir
    finally:
        info = PostmasterInfo.read_from_pgdata(pg_dir)
        if info is not None and info.is_running():
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pg_dir, user=_system_user())


def _socket_of(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parse_qs(parts.query)["host"][0], parts.path.lstrip("/") or "postgres"


async def test_a_server_left_by_a_deleted_install_is_started_again(orphaned: Path) -> None:
    pg_dir = orphaned / "pgdata"
    before = PostmasterInfo.read_from_pgdata(pg_dir)
    assert before is not None and before.is_running()

    # What users met: the old server refuses the API's connections.
    with pytest.raises(asyncpg.InvalidParameterValueError, match='"TimeZone"'):
        await asyncpg.connect(
            host=str(pg_dir), user="postgres", database="postgres", server_settings=SERVER_SETTINGS
        )

    url = embedded_database_url(orphaned)

    after = PostmasterInfo.read_from_pgdata(pg_dir)
    assert after is not None and after.is_running()
    assert after.pid != before.pid
    # pgserver first assigns ``process = None`` (unannotated): mypy takes it for always None.
    executable = after.process.exe()  # type: ignore[attr-defined]
    assert Path(executable).is_relative_to(POSTGRES_BIN_PATH.parent)
    host, database = _socket_of(url)
    connection = await asyncpg.connect(
        host=host, user="postgres", database=database, server_settings=SERVER_SETTINGS
    )
    try:
        assert await connection.fetchval("SHOW TimeZone") == "UTC"
    finally:
        await connection.close()


def test_a_server_of_the_current_install_is_left_running(pg_tmp: Path) -> None:
    pg_dir = pg_tmp / "pgdata"
    server = pgserver.get_server(pg_dir, cleanup_mode="stop")
    try:
        running = server.get_pid()
        assert stop_orphaned_server(pg_dir) is False
        info = PostmasterInfo.read_from_pgdata(pg_dir)
        assert info is not None and info.is_running() and info.pid == running
    finally:
        server.cleanup()


def test_a_data_directory_without_a_server_is_left_alone(tmp_path: Path) -> None:
    assert stop_orphaned_server(tmp_path) is False
    assert list(tmp_path.iterdir()) == []


def test_the_tests_own_embedded_server_is_stopped_at_the_end(pg_tmp: Path) -> None:
    """What the session's database_server fixture does when TEST_DATABASE_URL is unset:
    the suite leaves no PostgreSQL behind."""
    embedded_database_url(pg_tmp)
    info = PostmasterInfo.read_from_pgdata(pg_tmp / "pgdata")
    assert info is not None and info.is_running()
    process = psutil.Process(info.pid)

    assert stop_embedded_server(pg_tmp) is True
    assert not process.is_running()
    assert stop_embedded_server(pg_tmp) is False  # nothing left to stop
    assert stop_embedded_server(pg_tmp / "elsewhere") is False
