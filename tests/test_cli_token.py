"""README's auth section in three commands, run for real: `create-client` registers a
client, `token` asks the running server for an access token (client credentials), and
the token reads with exactly the client's scopes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.fixtures.server import live_server

PORTFOLIO = str(Path(sys.executable).with_name("portfolio"))


def portfolio(*args: str, database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PORTFOLIO, *args],
        env={**os.environ, "DATABASE_URL": database_url, **env},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


async def test_token_gets_an_access_token_with_the_clients_scopes(own_database: str) -> None:
    with live_server(own_database, PORTFOLIO_ENVIRONMENT="production") as server:
        created = portfolio(
            "create-client",
            "--name",
            "KPI pipeline",
            "--scopes",
            "portfolio:read kpis:ingest",
            "--grant",
            "client_credentials",
            database_url=own_database,
        )
        assert created.returncode == 0, created.stderr
        client_id = created.stdout.split("client_id:")[1].split()[0]
        secret = created.stdout.split("client_secret:")[1].split()[0]

        issued = portfolio(
            "token",
            "--client-id",
            client_id,
            "--url",
            server.url,
            database_url=own_database,
            PORTFOLIO_CLIENT_SECRET=secret,
        )
        assert issued.returncode == 0, issued.stderr
        token = issued.stdout.strip()
        assert token.count(".") == 2 and "\n" not in token  # one JWT, nothing else

        narrowed = portfolio(
            "token",
            "--client-id",
            client_id,
            "--scope",
            "portfolio:read",
            "--url",
            server.url,
            database_url=own_database,
            PORTFOLIO_CLIENT_SECRET=secret,
        )
        assert narrowed.returncode == 0, narrowed.stderr

        wrong = portfolio(
            "token",
            "--client-id",
            client_id,
            "--url",
            server.url,
            database_url=own_database,
            PORTFOLIO_CLIENT_SECRET="not the secret",
        )
        assert wrong.returncode == 1
        assert wrong.stdout == ""
        assert wrong.stderr == f"{server.url}/oauth/token refused: Client authentication failed.\n"

        async with httpx.AsyncClient(base_url=server.url) as http:
            scopes = []
            for bearer in (token, narrowed.stdout.strip()):
                response = await http.post(
                    "/graphql",
                    json={"query": "{ viewer { scopes } }"},
                    headers={"Authorization": f"Bearer {bearer}"},
                )
                assert response.status_code == 200, response.text
                scopes.append(sorted(response.json()["data"]["viewer"]["scopes"]))
        server.terminate()
        assert server.exited_gracefully()
    assert scopes == [["kpis:ingest", "portfolio:read"], ["portfolio:read"]]


async def test_token_says_when_no_server_answers(own_database: str) -> None:
    result = portfolio(
        "token",
        "--client-id",
        "x",
        "--url",
        "http://127.0.0.1:9",
        database_url=own_database,
        PORTFOLIO_CLIENT_SECRET="s",
    )
    assert result.returncode == 1
    assert result.stderr.startswith("no answer from http://127.0.0.1:9: ")
