"""The graphql-http audit suite (the GraphQL-over-HTTP specification's own tests) against
a live server: every MUST, SHOULD and MAY audit passes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.fixtures.node import NodePackages
from tests.fixtures.server import live_server

AUDIT = Path(__file__).with_name("http_audit")
# Installing starts now, at collection: see tests.fixtures.node.
AUDIT_PACKAGES = NodePackages(AUDIT, "graphql-http")


def test_graphql_http_audit_passes_every_audit(own_database: str) -> None:
    AUDIT_PACKAGES.ready()
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
