"""README's auth section in three commands, run for real against a running server:
`create-client` registers a client, `token` asks the server for an access token (client
credentials), and the token reads with exactly the client's scopes. The commands run
in-process (tests.fixtures.cli); the server is a real process."""

from __future__ import annotations

import httpx

from tests.fixtures.cli import created_client, portfolio
from tests.fixtures.server import live_server


def test_token_gets_an_access_token_with_the_clients_scopes(own_database: str) -> None:
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
        assert created.exit_code == 0, created.output
        client_id, secret = created_client(created.stdout)

        issued = portfolio(
            "token",
            "--client-id",
            client_id,
            "--url",
            server.url,
            database_url=own_database,
            PORTFOLIO_CLIENT_SECRET=secret,
        )
        assert issued.exit_code == 0, issued.output
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
        assert narrowed.exit_code == 0, narrowed.output

        wrong = portfolio(
            "token",
            "--client-id",
            client_id,
            "--url",
            server.url,
            database_url=own_database,
            PORTFOLIO_CLIENT_SECRET="not the secret",
        )
        assert wrong.exit_code == 1
        assert wrong.stdout == ""
        assert wrong.stderr == f"{server.url}/oauth/token refused: Client authentication failed.\n"

        with httpx.Client(base_url=server.url) as http:
            scopes = []
            for bearer in (token, narrowed.stdout.strip()):
                response = http.post(
                    "/graphql",
                    json={"query": "{ viewer { scopes } }"},
                    headers={"Authorization": f"Bearer {bearer}"},
                )
                assert response.status_code == 200, response.text
                scopes.append(sorted(response.json()["data"]["viewer"]["scopes"]))
        server.terminate()
        assert server.exited_gracefully()
    assert scopes == [["kpis:ingest", "portfolio:read"], ["portfolio:read"]]


def test_token_says_when_no_server_answers(database_url: str) -> None:
    result = portfolio(
        "token",
        "--client-id",
        "x",
        "--url",
        "http://127.0.0.1:9",
        database_url=database_url,  # never reached: the command asks the server
        PORTFOLIO_CLIENT_SECRET="s",
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("no answer from http://127.0.0.1:9: ")
