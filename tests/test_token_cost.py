"""A request with a bearer token costs the statements of the same request without one:
the token's signature is checked in memory and its principal remembered
(``auth.principal_cache``). What is remembered is forgotten at once when this process
revokes or disables something, when another process does as soon as the database's
notification arrives, and nothing is remembered while that notification cannot be
heard.

The app is the production wiring (``create_app``: its own pool, its change feed) on a
database of the test's own, whose writes are committed. Statements are counted on every
connection of the app's pool; waits are on the cache's own events, never on time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import event, select
from starlette.applications import Starlette

from api.app import create_app
from auth import identity, models
from auth.passwords import hash_secret
from auth.principal import Principal
from auth.principal_cache import CHANNEL, PrincipalCache
from domain.changes import APPLICATION_NAME
from domain.database import listen_dsn
from schema.ids import encode_id
from tests.conftest import settings_for
from tests.fixtures.database import StatementCounter, run_sql

READ = "{ products(first: 5, orderBy: {field: KEY}) { nodes { key name } } }"
EVENT_TIMEOUT = 15  # seconds: a bound on waiting for an event, not a delay
SECRET = "a-secret-for-the-test-client"


async def until(cache: PrincipalCache, condition: Callable[[], bool]) -> None:
    """Wait, event by event, until ``condition()`` holds (the cache's changes)."""
    while not condition():
        await asyncio.wait_for(cache.forgot.wait(), EVENT_TIMEOUT)


@pytest.fixture
async def app(own_database: str) -> AsyncIterator[Starlette]:
    """Production; anonymous callers may read, so that a token with the same scopes
    asks exactly the same statements. No response cache: every read reaches SQL."""
    app = create_app(
        settings_for(
            environment="production",
            anonymous_scopes=["portfolio:read"],
            response_cache_chars=0,
        ),
        database_url=own_database,
    )
    yield app
    await app.state.reads.close()
    await app.state.engine.dispose()


@pytest.fixture
async def people(app: Starlette) -> dict[str, Any]:
    """Committed before the app listens, so that their notifications are not heard:
    a service client with a secret, a viewer and an administrator's client."""
    async with app.state.sessions() as session, session.begin():
        service = models.OAuthClient(
            client_id="svc-cost",
            name="Service",
            grant_types=["client_credentials"],
            scopes=["portfolio:read", "admin:users"],
            secret_hash=hash_secret(SECRET),
        )
        frontend = models.OAuthClient(
            client_id="web-cost",
            name="Frontend",
            grant_types=["authorization_code", "refresh_token"],
            scopes=["portfolio:read"],
            redirect_uris=["http://localhost/cb"],
        )
        viewer = models.User(email="viewer-cost@example.com", display_name="Viewer")
        session.add_all([service, frontend, viewer])
        await session.flush()
        role = await session.scalar(select(models.Role.id).where(models.Role.name == "viewer"))
        session.add(models.RoleGrant(user_id=viewer.id, role_id=role))
    return {"service": service, "frontend": frontend, "viewer": viewer}


@pytest.fixture
def counted(app: Starlette) -> StatementCounter:
    """Statements of every connection of the app's pools (through SQLAlchemy, and on the
    driver pool's connections for the reads and token lookups that bypass it)."""
    counter = StatementCounter()
    sync_engine = app.state.engine.sync_engine

    def checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(counter.logged)

    event.listen(sync_engine, "before_cursor_execute", counter)
    event.listen(sync_engine, "checkout", checked_out)
    app.state.reads.on_open(lambda driver: driver.add_query_logger(counter.logged))
    return counter


@pytest.fixture
async def served(app: Starlette, people: dict[str, Any]) -> AsyncIterator[Starlette]:
    """The app with its lifespan: the change feed listens."""
    async with app.router.lifespan_context(app):
        principals = app.state.auth.principals
        await until(principals, lambda: principals.listening)
        yield app


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def token(
    app: Starlette,
    client: models.OAuthClient,
    user: models.User | None = None,
    scopes: frozenset[str] = frozenset({"portfolio:read"}),
    **extra: Any,
) -> dict[str, str]:
    issued, _ = await app.state.auth.tokens.issue(
        client_id=client.client_id,
        user_id=user.id if user is not None else None,
        scopes=scopes,
        **extra,
    )
    return {"Authorization": f"Bearer {issued}"}


async def read(
    http: httpx.AsyncClient, headers: dict[str, str] | None = None, *, status: int = 200
) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": READ}, headers=headers or {})
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


async def statements_of(
    counter: StatementCounter, http: httpx.AsyncClient, headers: dict[str, str] | None = None
) -> list[str]:
    counter.reset()
    body = await read(http, headers)
    await counter.delivered()
    assert "errors" not in body, body
    assert len(body["data"]["products"]["nodes"]) == 5
    return list(counter.statements)


async def test_a_read_with_a_token_costs_the_statements_of_the_same_read_without(
    served: Starlette, http: httpx.AsyncClient, counted: StatementCounter, people: dict[str, Any]
) -> None:
    service = await token(served, people["service"])
    viewer = await token(served, people["frontend"], people["viewer"])
    for _ in range(3):  # planned, rendered, then the known read; keys read once
        await statements_of(counted, http)
        await statements_of(counted, http, service)
    anonymous = await statements_of(counted, http)
    assert len(anonymous) == 1, anonymous
    assert await statements_of(counted, http, service) == anonymous
    # A user's token: the first request looks its principal up (client, user, roles,
    # revocations, one statement), every later one does not.
    first = await statements_of(counted, http, viewer)
    assert len(first) == len(anonymous) + 1
    assert "oauth_revoked_access_tokens" in first[0] and "role_grants" in first[0]
    for _ in range(3):
        assert await statements_of(counted, http, viewer) == anonymous


def unfed_cache() -> PrincipalCache:
    """A cache of this process that hears no database: only this process's own
    changes can empty it, which tells them apart from the notification's."""
    cache = PrincipalCache()
    cache.set_listening(True)
    cache.put("some token", cache.generation, Principal())
    return cache


async def test_a_token_revoked_in_this_process_is_refused_at_the_next_request(
    served: Starlette, http: httpx.AsyncClient, counted: StatementCounter, people: dict[str, Any]
) -> None:
    issued = await http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=("svc-cost", SECRET)
    )
    access = issued.json()["access_token"]
    headers = {"Authorization": f"Bearer {access}"}
    await statements_of(counted, http, headers)
    assert len(served.state.auth.principals) == 1  # remembered
    witness = unfed_cache()
    revoked = await http.post("/oauth/revoke", data={"token": access}, auth=("svc-cost", SECRET))
    assert revoked.status_code == 200
    assert len(witness) == 0  # forgotten by the endpoint itself
    body = await read(http, headers, status=401)
    assert body["errors"][0]["message"] == "The token has been revoked."
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_user_disabled_or_a_role_revoked_in_this_process_counts_at_the_next_request(
    served: Starlette, http: httpx.AsyncClient, counted: StatementCounter, people: dict[str, Any]
) -> None:
    admin = await token(served, people["service"], scopes=frozenset(people["service"].scopes))
    viewer = await token(served, people["frontend"], people["viewer"])
    user_id = encode_id("User", people["viewer"].id)
    await statements_of(counted, http, viewer)
    witness = unfed_cache()

    revoke = await http.post(
        "/graphql",
        headers=admin,
        json={
            "query": 'mutation($id: ID!) { revokeRole(input: {userId: $id, role: "viewer"})'
            " { userErrors { code } } }",
            "variables": {"id": user_id},
        },
    )
    assert revoke.json()["data"] == {"revokeRole": {"userErrors": []}}
    assert len(witness) == 0  # forgotten by the mutation itself
    witness.put("some token", witness.generation, Principal())
    body = await read(http, viewer)
    assert body["data"] == {"products": None}
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert body["errors"][0]["extensions"]["requiredScopes"] == ["portfolio:read"]

    disable = await http.post(
        "/graphql",
        headers=admin,
        json={
            "query": "mutation($id: ID!) { setUserActive(input: {id: $id, active: false})"
            " { userErrors { code } } }",
            "variables": {"id": user_id},
        },
    )
    assert disable.json()["data"] == {"setUserActive": {"userErrors": []}}
    assert len(witness) == 0
    body = await read(http, viewer, status=401)
    assert body["errors"][0]["message"] == "The user of this token is disabled."


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        (
            "UPDATE oauth_clients SET is_active = false, tokens_valid_after = now()"
            " WHERE client_id = 'web-cost'",
            "The client of this token is disabled.",
        ),
        (
            "UPDATE users SET is_active = false WHERE email = 'viewer-cost@example.com'",
            "The user of this token is disabled.",
        ),
        (
            "UPDATE oauth_refresh_tokens SET revoked_at = now() WHERE family_id = 'family-cost'",
            "The token has been revoked.",
        ),
        ("INSERT INTO oauth_revoked_access_tokens VALUES (:jti, now() + interval '1 hour')", None),
    ],
    ids=["client-disabled", "user-disabled", "family-revoked", "jti-revoked"],
)
async def test_a_revocation_by_another_process_counts_once_its_notification_arrives(
    served: Starlette,
    http: httpx.AsyncClient,
    counted: StatementCounter,
    people: dict[str, Any],
    own_database: str,
    change: str,
    refusal: str | None,
) -> None:
    principals = served.state.auth.principals
    async with served.state.sessions() as session, session.begin():
        session.add(
            models.RefreshToken(
                token_hash="0" * 64,
                family_id="family-cost",
                client_id=people["frontend"].id,
                user_id=people["viewer"].id,
                scopes=["portfolio:read"],
                expires_at=datetime.now(UTC) + timedelta(days=1),
            )
        )  # issuing a refresh token is no change a principal feels: no notification
    viewer = await token(served, people["frontend"], people["viewer"], family="family-cost")
    claims = await served.state.auth.tokens.verify(viewer["Authorization"].split()[1])
    anonymous = await statements_of(counted, http)
    await statements_of(counted, http, viewer)
    assert await statements_of(counted, http, viewer) == anonymous  # from memory
    generation = principals.generation
    # Another replica, the CLI, psql: a connection of its own, committed.
    await run_sql(own_database, change, {"jti": claims.jti})
    await until(principals, lambda: principals.generation > generation)
    body = await read(http, viewer, status=401)
    assert body["errors"][0]["message"] == (refusal or "The token has been revoked.")


async def test_a_role_removed_by_another_process_counts_once_its_notification_arrives(
    served: Starlette,
    http: httpx.AsyncClient,
    counted: StatementCounter,
    people: dict[str, Any],
    own_database: str,
) -> None:
    principals = served.state.auth.principals
    viewer = await token(served, people["frontend"], people["viewer"])
    anonymous = await statements_of(counted, http)
    await statements_of(counted, http, viewer)
    assert await statements_of(counted, http, viewer) == anonymous
    generation = principals.generation
    await run_sql(
        own_database,
        "UPDATE roles SET scopes = array_remove(scopes, 'portfolio:read') WHERE name = 'viewer'",
    )
    await until(principals, lambda: principals.generation > generation)
    body = await read(http, viewer)
    assert body["data"] == {"products": None}
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_while_changes_cannot_be_heard_every_token_is_checked_in_the_database(
    app: Starlette,
    people: dict[str, Any],
    http: httpx.AsyncClient,
    counted: StatementCounter,
    own_database: str,
) -> None:
    """No lifespan: the change feed never listens (as when its connection is down)."""
    assert not app.state.auth.principals.listening
    viewer = await token(app, people["frontend"], people["viewer"])
    for _ in range(3):  # planned, rendered, then the known read; keys read once
        anonymous = await statements_of(counted, http)
        await statements_of(counted, http, viewer)
    for _ in range(3):
        checked = await statements_of(counted, http, viewer)
        assert len(checked) == len(anonymous) + 1
        assert "oauth_revoked_access_tokens" in checked[0]
    assert len(app.state.auth.principals) == 0
    # Revoked elsewhere, no notification heard: refused at the next request all the same.
    await run_sql(
        own_database, "UPDATE users SET is_active = false WHERE email = 'viewer-cost@example.com'"
    )
    body = await read(http, viewer, status=401)
    assert body["errors"][0]["message"] == "The user of this token is disabled."


async def test_a_lost_feed_forgets_every_principal_and_listens_again(
    served: Starlette,
    http: httpx.AsyncClient,
    counted: StatementCounter,
    people: dict[str, Any],
    own_database: str,
) -> None:
    principals = served.state.auth.principals
    viewer = await token(served, people["frontend"], people["viewer"])
    anonymous = await statements_of(counted, http)
    await statements_of(counted, http, viewer)
    assert len(principals) == 1
    generation = principals.generation
    ended = await run_sql(
        own_database,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE application_name = :name AND datname = current_database()",
        {"name": APPLICATION_NAME},
    )
    assert ended == 1
    # Deaf (forgotten), then listening again by itself (forgotten again).
    await until(principals, lambda: principals.generation >= generation + 2)
    assert len(principals) == 0
    await until(principals, lambda: principals.listening)
    assert len(await statements_of(counted, http, viewer)) == len(anonymous) + 1
    assert await statements_of(counted, http, viewer) == anonymous


async def test_a_change_made_here_is_forgotten_at_once_and_again_at_its_commit(
    app: Starlette, people: dict[str, Any]
) -> None:
    """The in-process path alone: a cache that hears no feed still forgets."""
    cache = PrincipalCache()
    cache.set_listening(True)
    principal: Any = object()
    cache.put("before", cache.generation, principal)
    looked_up_before = cache.generation
    async with app.state.sessions() as session, session.begin():
        await identity.set_client_active(
            session, identity.OPERATOR, people["frontend"].id, active=False
        )
        assert len(cache) == 0  # forgotten at once
        cache.put("between", cache.generation, principal)  # a lookup before the commit
        assert len(cache) == 1
    assert len(cache) == 0  # forgotten again at the commit
    cache.put("late", looked_up_before, principal)  # looked up before the change
    assert cache.get("late") is None


async def test_only_changes_a_principal_feels_are_notified(
    app: Starlette, people: dict[str, Any], own_database: str
) -> None:
    """Issuing and rotating refresh tokens, and the portfolio's own writes, say nothing
    on the channel; revoking a refresh token says it once per transaction."""
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(listen_dsn(app.state.engine))
    try:
        await listener.add_listener(CHANNEL, lambda *args: heard.put_nowait(args[3]))
        client = people["frontend"].id
        user = people["viewer"].id
        for number in range(2):
            await run_sql(
                own_database,
                "INSERT INTO oauth_refresh_tokens (token_hash, family_id, client_id, user_id,"
                " scopes, expires_at) VALUES (:hash, 'family-heard', :client, :user,"
                " '{portfolio:read}', now() + interval '1 day')",
                {"hash": str(number) * 64, "client": client, "user": user},
            )
        await run_sql(
            own_database,
            "UPDATE oauth_refresh_tokens SET rotated_at = now() WHERE token_hash = :hash",
            {"hash": "0" * 64},
        )
        await run_sql(own_database, "UPDATE initiatives SET title = title || '.'")
        await run_sql(
            own_database,
            "UPDATE oauth_refresh_tokens SET revoked_at = now() WHERE family_id = 'family-heard'",
        )
        # Delivered in commit order: anything the earlier writes sent would come first.
        assert await asyncio.wait_for(heard.get(), EVENT_TIMEOUT) == "oauth_refresh_tokens"
        await run_sql(own_database, "UPDATE role_grants SET granted_at = now()")
        assert await asyncio.wait_for(heard.get(), EVENT_TIMEOUT) == "role_grants"
        assert heard.empty()
    finally:
        await listener.close()
