"""The ASGI application: Starlette routes, the database engine and its lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

import dashboard
from api import migrate
from api.embedded import resolve_database_url
from api.logging import configure_logging
from api.middleware import Direct, RequestGuard
from auth.identity import (
    DASHBOARD_CLIENT_ID,
    DEMO_CLIENT_ID,
    OPERATOR,
    dashboard_client,
    demo_client,
)
from auth.oauth import AuthorizationServer
from auth.oauth.clients import redirect_uri_problem
from auth.principal_cache import CHANNEL as PRINCIPALS_CHANNEL
from auth.services import AuthServices
from domain.changes import CHANNEL, ChangeFeed
from domain.database import (
    create_engine,
    create_session_factory,
    listen_dsn,
    on_one_connection,
    read_connections,
)
from domain.metrics import Metrics
from domain.ratelimit import LocalRateLimiter, RateLimiter, RedisRateLimiter
from domain.seed import demo_day, refresh_statistics, seed_demo
from domain.settings import Settings, get_settings
from domain.webhooks.outbox import outbox_state
from domain.webhooks.secrets import SecretBox
from domain.webhooks.worker import DeliveryWorker
from schema import graphiql
from schema.endpoint import GraphQLEndpoint
from schema.webhook_payloads import PayloadRenderer

log = structlog.get_logger(__name__)


async def healthz(request: Request) -> JSONResponse:
    """The process is up (no dependency is checked)."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready to serve: PostgreSQL answers and its schema is at the code's migration head."""
    engine = request.app.state.engine
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(3):
            current = await migrate.current_revision(engine)
        checks["database"] = "ok"
        head = migrate.head_revision()
        checks["migrations"] = "ok" if current == head else f"at {current}, head is {head}"
    except (TimeoutError, OSError, SQLAlchemyError) as error:
        checks["database"] = f"unreachable: {type(error).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )


# The outbox's state is read at each scrape; a database too slow to answer leaves the
# previous values rather than holding the scrape.
OUTBOX_SCRAPE_TIMEOUT_SECONDS = 2.0


async def metrics(request: Request) -> Response:
    engine = request.app.state.engine
    observed: Metrics = request.app.state.metrics
    observed.pool_in_use.set(engine.pool.checkedout())
    observed.pool_size.set(engine.pool.size())
    observed.observe_read_pool(request.app.state.reads)
    try:
        async with asyncio.timeout(OUTBOX_SCRAPE_TIMEOUT_SECONDS):
            state = await outbox_state(engine)
    except (TimeoutError, OSError, SQLAlchemyError) as error:
        log.warning("outbox_state_unavailable", error=type(error).__name__)
    else:
        observed.webhooks.observe_outbox(
            state.lag_seconds, state.oldest_seconds, state.pending, state.endpoints_inactive
        )
    return observed.render()


def dashboard_addresses(issuer: str) -> list[str]:
    """Where the demo's dashboard client may receive codes: the page at the issuer's
    address, and at its loopback twin (127.0.0.1 and localhost are both typed); only
    addresses the authorization endpoint accepts (http only on this machine)."""
    addresses = [f"{issuer.rstrip('/')}/"]
    for one, other in (("//127.0.0.1", "//localhost"), ("//localhost", "//127.0.0.1")):
        if one + ":" in addresses[0] or addresses[0].startswith(f"http:{one}/"):
            addresses.append(addresses[0].replace(one, other, 1))
    return [address for address in addresses if redirect_uri_problem(address) is None]


QUEUED_PER_PLACE = 4


def admission_limits(settings: Settings) -> tuple[int | None, int]:
    """Requests a worker handles at once (None: no limit) and how many may wait.

    By default, the connections its pool may open: each request holds one while it
    runs, so more at once would only wait for a connection (and fail after
    ``db_pool_timeout_seconds``) while adding to everyone's latency."""
    at_once = settings.max_concurrent_requests
    if at_once is None:
        at_once = settings.db_pool_size + settings.db_max_overflow
    if at_once == 0:
        return None, 0
    queued = settings.max_queued_requests
    # The line absorbs bursts (a page opening fires dozens of requests at once, and the
    # GraphQL-over-HTTP audit sends its 70 together): only sustained overload is shed.
    return at_once, at_once * QUEUED_PER_PLACE if queued is None else queued


def make_rate_limiter(settings: Settings) -> RateLimiter:
    if settings.redis_url:
        return RedisRateLimiter(
            settings.redis_url, settings.rate_limit_points, settings.rate_limit_window_seconds
        )
    return LocalRateLimiter(settings.rate_limit_points, settings.rate_limit_window_seconds)


def create_app(
    settings: Settings | None = None, *, database_url: str | None = None, demo: bool = False
) -> Starlette:
    """Build the app. ``database_url`` overrides settings (tests); ``demo`` seeds an empty
    database with the demo portfolio at start-up."""
    settings = settings or get_settings()
    configure_logging(settings)  # before the embedded database says it is ready
    url = database_url or resolve_database_url(settings)
    embedded = database_url is None and settings.database_url is None
    engine = create_engine(url, settings)
    migrate_on_start = settings.migrate_on_start
    if migrate_on_start is None:
        # The demo seeds at start-up, so it needs the schema wherever it runs.
        migrate_on_start = embedded or demo
    return assemble_app(
        settings,
        engine,
        create_session_factory(engine),
        migrate_on_start=migrate_on_start,
        demo=demo,
    )


def assemble_app(
    settings: Settings,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    *,
    migrate_on_start: bool = False,
    demo: bool = False,
) -> Starlette:
    """Wire routes to an engine and a session factory (tests bind these to one transaction)."""
    configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if migrate_on_start:
            await migrate.upgrade(engine)
        if demo:
            async with sessions() as session, session.begin():
                # Measured until today, so the demo's KPIs read as fresh.
                report = await seed_demo(session, await demo_day(session))
                secret = await demo_client(session, settings.data_dir)
                await dashboard_client(session, OPERATOR, dashboard_addresses(settings.issuer))
                if not report.skipped:
                    await refresh_statistics(session)
            log.info("demo_data", report=str(report))
            # The one line a newcomer needs to call the API with a token.
            print(
                "Get a token (all scopes) for the demo client:\n"
                f"  curl -s -u {DEMO_CLIENT_ID}:{secret} -d grant_type=client_credentials "
                f"{settings.issuer}/oauth/token\n"
                "then send it as `Authorization: Bearer <access_token>` (GraphiQL: Headers tab).\n"
                f"The dashboard: {settings.issuer}/ (sign in as a user: `portfolio create-admin`).",
                flush=True,
            )
        if feed is not None:
            hub.start()
            feed.start()
        if deliveries is not None:
            deliveries.start()
        yield
        if deliveries is not None:
            await deliveries.stop()  # before the engine goes: the batch in flight is recorded
        if feed is not None:
            await feed.close()
            await hub.close()
        await rate_limiter.aclose()
        await auth.external.aclose()
        await reads.close()  # before the engine: both are the same database's connections
        await engine.dispose()

    auth = AuthServices.create(settings, sessions)
    rate_limiter = make_rate_limiter(settings)
    observed = Metrics()
    reads = read_connections(engine, sessions, settings)
    endpoint = GraphQLEndpoint(settings, sessions, auth, rate_limiter, observed, reads)
    responses = endpoint.view.responses
    observed.watch_response_cache(responses)
    observed.watch_subscriptions(endpoint.hub)
    SecretBox(settings)  # a malformed PORTFOLIO_WEBHOOK_SECRET_KEY stops the start here
    feed = None
    deliveries = None
    hub = endpoint.hub
    if not on_one_connection(sessions):
        # Cached answers, and the principals of tokens seen before, are kept only while
        # the database's changes are heard; the same connection feeds every subscription
        # of the process.
        feed = ChangeFeed(listen_dsn(engine), connect_timeout=settings.db_connect_timeout_seconds)
        if settings.response_cache_chars:
            feed.subscribe(CHANNEL, lambda _: responses.invalidate(), responses.set_listening)
        feed.subscribe(PRINCIPALS_CHANNEL, auth.principals.changed, auth.principals.set_listening)
        feed.subscribe(CHANNEL, hub.notified, hub.set_listening)
        feed.subscribe(PRINCIPALS_CHANNEL, hub.principals_changed, lambda _listening: None)
        if settings.runs_webhook_worker:
            # Each process delivers (claims never overlap); a committed change wakes it.
            deliveries = DeliveryWorker(
                engine, settings, PayloadRenderer(sessions, settings), observed.webhooks
            )
            feed.subscribe(CHANNEL, deliveries.wake, lambda _listening: None)
    at_once, queued = admission_limits(settings)
    middleware = [
        Middleware(
            RequestGuard,
            metrics=observed,
            max_body_bytes=settings.max_body_bytes,
            timeout_seconds=settings.request_timeout_seconds,
            large_body_bytes=settings.large_body_bytes,
            large_requests_at_once=settings.large_requests_at_once,
            max_concurrent_requests=at_once,
            max_queued_requests=queued,
        )
    ]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                max_age=600,
            )
        )
    # Innermost: what went through the guard (and CORS) reaches the endpoint directly.
    middleware.append(Middleware(Direct, path="/graphql", endpoint=endpoint))
    authorization = AuthorizationServer(auth, sessions)
    app = Starlette(
        routes=[
            Route("/graphql", endpoint, methods=None),  # over HTTP: reached through Direct
            WebSocketRoute("/graphql", endpoint),  # subscriptions (graphql-transport-ws)
            *authorization.routes(),
            *graphiql.routes(settings),  # GraphiQL's files, in development
            *dashboard.routes(DASHBOARD_CLIENT_ID),  # the page for people, in every mode
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
    app.state.metrics = observed
    app.state.auth = auth
    app.state.rate_limiter = rate_limiter
    app.state.engine = engine
    app.state.reads = reads  # closed by the lifespan (a test without one closes it)
    app.state.responses = responses
    app.state.sessions = sessions
    app.state.settings = settings
    app.state.view = endpoint.view  # its known paths: read by bench/ and tests
    return app
