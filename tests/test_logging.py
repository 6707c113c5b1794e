"""What the server prints, read from a real `portfolio serve`: in production one JSON
line per event, one `request` line per request (uvicorn's access log is off), no
colour codes when the output is not a terminal, and no traceback for an outcome the
caller caused (FORBIDDEN, NOT_FOUND, a bad query, a refused write, a rate limit)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.fixtures.server import live_server

READ = "{ products(first: 2) { totalCount } }"
REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("read", {"query": READ}),
    ("forbidden", {"query": "{ auditEvents(first: 1) { totalCount } }"}),
    ("not found", {"query": '{ node(id: "SW5pdGlhdGl2ZTo5OTk5OTk=") { id } }'}),
    ("bad id", {"query": '{ node(id: "not-an-id") { id } }'}),
    ("validation", {"query": "{ nope }"}),
    ("parse", {"query": "{ products("}),
    (
        "bad variables",
        {
            "query": "query($n: Int) { products(first: $n) { totalCount } }",
            "variables": {"n": "many"},
        },
    ),
    (
        "refused write",
        {
            "query": 'mutation { archiveInitiative(input: {id: "SW5pdGlhdGl2ZTo5OTk5OTk="})'
            " { userErrors { code } } }"
        },
    ),
]


async def test_production_logs_one_json_line_per_request_and_no_tracebacks(
    own_database: str,
) -> None:
    with live_server(
        own_database,
        PORTFOLIO_ENVIRONMENT="production",
        PORTFOLIO_ANONYMOUS_SCOPES='["portfolio:read", "initiatives:write"]',
        PORTFOLIO_RATE_LIMIT_POINTS="12",
    ) as server:
        request_ids = []
        async with httpx.AsyncClient(base_url=server.url) as http:
            for _, body in REQUESTS:
                response = await http.post("/graphql", json=body)
                request_ids.append(response.headers["x-request-id"])
            limited = None
            for _ in range(20):  # spend the small budget until the limit answers
                response = await http.post("/graphql", json={"query": READ})
                request_ids.append(response.headers["x-request-id"])
                if response.status_code == 429:
                    limited = response
                    break
            assert limited is not None, "the rate limit never answered"
        server.terminate()
        assert server.exited_gracefully()

    lines = [line for line in server.output.splitlines() if line.strip()]
    assert "Traceback" not in server.output
    assert "\x1b[" not in server.output  # no colour codes: stdout is a pipe here
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"event", "level", "timestamp"} <= record.keys() for record in records)
    requests = [record for record in records if record["event"] == "request"]
    assert [record["request_id"] for record in requests] == request_ids
    assert not any(record.get("logger") == "uvicorn.access" for record in records)
    assert not any(record["level"] in {"error", "critical"} for record in records)
    assert requests[-1]["status"] == 429


async def test_development_logs_are_readable_lines_without_colour_on_a_pipe(
    own_database: str,
) -> None:
    with live_server(own_database) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            response = await http.post("/graphql", json={"query": "{ nope }"})
            assert response.status_code == 200
        server.terminate()
        assert server.exited_gracefully()
    assert "\x1b[" not in server.output
    assert "Traceback" not in server.output
    request_lines = [line for line in server.output.splitlines() if " request " in line]
    assert len(request_lines) == 1
    assert "path=/graphql" in request_lines[0] and "status=200" in request_lines[0]
