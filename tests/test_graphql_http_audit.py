"""The graphql-http audit suite (the GraphQL-over-HTTP specification's own tests) against
a live server: every MUST, SHOULD and MAY audit passes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.fixtures.server import live_server

AUDIT = Path(__file__).with_name("http_audit")


def _install_audit() -> None:
    assert shutil.which("node") and shutil.which("npm"), "the audit needs Node.js and npm"
    if not (AUDIT / "node_modules" / "graphql-http").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=AUDIT,
            check=True,
            timeout=300,
        )


def test_graphql_http_audit_passes_every_audit(own_database: str) -> None:
    _install_audit()
    with live_server(own_database) as server:
        run = subprocess.run(
            ["node", "audit.mjs", f"{server.url}/graphql"],
            cwd=AUDIT,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        server.terminate()
        assert server.exited_gracefully()
    results = json.loads(run.stdout)
    assert len(results) >= 60  # the suite as pinned in package-lock.json
    failed = [
        f"{r['id']} {r['status']}: {r['name']} ({r['reason']})"
        for r in results
        if r["status"] != "ok"
    ]
    assert failed == []
