"""What the server prints, read from a real `portfolio serve`: in production one JSON
line per event, one `request` line per request (uvicorn's access log is off), no
colour codes when the output is not a terminal, and no traceback for an outcome the
caller caused (FORBIDDEN, NOT_FOUND, a bad query, a refused write, a rate limit).
In process: our events and other libraries' records in one format, on whatever
standard output is when each is written."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import orjson
import pytest
import structlog

from api.logging import configure_logging
from tests.conftest import settings_for
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


def _lines(out: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_production_writes_our_events_and_other_libraries_records_as_json_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(settings_for(environment="production"))
    capsys.readouterr()
    structlog.contextvars.bind_contextvars(request_id="req-7")
    try:
        structlog.get_logger("api.test_logging").info(
            "request", status=200, ms=1.5, tags={"b", "a"} - {"b"}, nested={1: "one"}
        )
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
    logging.getLogger("uvicorn.error").warning("port %d taken", 8000)
    structlog.get_logger("api.test_logging").debug("below the level")
    ours, theirs = _lines(capsys.readouterr().out)
    assert ours["event"] == "request"
    assert (ours["status"], ours["ms"], ours["request_id"]) == (200, 1.5, "req-7")
    assert ours["level"] == "info"
    assert ours["timestamp"].endswith("Z")
    # What JSON cannot hold as it is: a set as its repr, a non-string key as a string.
    assert ours["tags"] == "{'a'}"
    assert ours["nested"] == {"1": "one"}
    assert (theirs["event"], theirs["level"]) == ("port 8000 taken", "warning")
    assert theirs["logger"] == "uvicorn.error"


def test_production_logs_a_fault_with_its_traceback_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(settings_for(environment="production"))
    capsys.readouterr()
    try:
        raise ValueError("the detail")
    except ValueError:
        structlog.get_logger("schema.test_logging").exception("unexpected_error")
    [entry] = _lines(capsys.readouterr().out)
    assert (entry["event"], entry["level"]) == ("unexpected_error", "error")
    assert "Traceback (most recent call last)" in entry["exception"]
    assert "ValueError: the detail" in entry["exception"]


def test_development_writes_readable_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(settings_for(environment="development"))
    capsys.readouterr()
    structlog.get_logger("api.test_logging").info("request", status=404)
    [line] = [line for line in capsys.readouterr().out.splitlines() if "request" in line]
    assert not line.startswith("{")
    assert "[info     ] request" in line
    assert "status=404" in line
