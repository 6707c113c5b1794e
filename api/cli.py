"""The `portfolio` command: serve, migrate, seed, export the schema."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import httpx
import structlog
import typer
import uvicorn
from prometheus_client import Gauge

from api.collector import settle_for_serving
from api.embedded import resolve_database_url
from api.logging import configure_logging
from domain.settings import Environment, Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine
    from starlette.applications import Starlette

    from domain.services import measurements

# What a command needs beyond settings, logging and uvicorn (the app, the schema, the
# services, alembic) is imported where the command runs: `serve --workers N`'s
# supervisor serves nothing and imports none of it (~70 MB and 0.6 s of CPU to start,
# against ~125 MB and 2 s), nor does a command such as `token` that only calls HTTP.

app = typer.Typer(
    help="Portfolio Graph: a GraphQL API for an IT product portfolio.", no_args_is_help=True
)
migrate_app = typer.Typer(help="Database migrations (alembic).", no_args_is_help=True)
app.add_typer(migrate_app, name="migrate")

T = TypeVar("T")


def _with_engine(work: Callable[[AsyncEngine], Awaitable[T]], url: str | None = None) -> T:
    from domain.database import create_engine

    settings = get_settings()

    async def run() -> T:
        engine = create_engine(url or resolve_database_url(settings), settings)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


@app.command()
def serve(
    demo: Annotated[
        bool, typer.Option(help="Development mode, and load the demo portfolio if it is missing.")
    ] = False,
    host: Annotated[
        str | None,
        typer.Option(
            help="Interface to listen on.",
            show_default=f"$PORTFOLIO_HOST, else {Settings.model_fields['host'].default}",
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            help="Port to listen on.",
            show_default=f"$PORTFOLIO_PORT, else {Settings.model_fields['port'].default}",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            envvar="WEB_CONCURRENCY",
            help="Worker processes sharing the port.",
            show_default="one per CPU this process may use in production, one in development",
        ),
    ] = None,
) -> None:
    """Run the API server (uvicorn)."""
    settings = get_settings()
    configure_logging(settings)  # the supervisor's own records, in the same format
    if demo:
        settings = settings.model_copy(update={"environment": Environment.DEVELOPMENT})
    host, port = host or settings.host, port or settings.port
    if "issuer" not in settings.model_fields_set:
        # Tokens name the server they come from: by default, where it listens.
        settings = settings.model_copy(update={"issuer": f"http://{host}:{port}"})
    workers = workers or default_workers(settings)
    if demo and workers > 1:
        # The demo seeds and prints its client's secret at start-up: one process does it.
        raise typer.BadParameter("--demo serves from one worker", param_hint="--workers")
    if workers == 1:
        from api.app import create_app

        application = ready_to_serve(create_app(settings, demo=demo))
        if demo:
            typer.echo(
                f"Portfolio Graph (demo) on http://{host}:{port}/graphql  (GraphiQL in a browser)"
            )
        # SIGTERM: stop accepting, let in-flight requests finish (within the grace), then exit.
        uvicorn.run(application, **_uvicorn_options(settings, host, port))
        return
    _prepare_for_workers(settings)
    # uvicorn's supervisor binds the port once, then starts the workers (spawned: each
    # imports the app anew through `worker_app`), restarts one that dies or stops
    # answering its health pings, and on SIGTERM or SIGINT passes SIGTERM to each (which
    # drains its requests within the grace) and waits for them all before it exits.
    uvicorn.run(f"{__name__}:worker_app", **_worker_options(settings, workers, host, port))


def default_workers(settings: Settings) -> int:
    """One per CPU the process may run on in production (its affinity, not the host's
    count); one in development, where a single process is easier to follow."""
    if settings.is_development:
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _uvicorn_options(settings: Settings, host: str, port: int) -> dict[str, Any]:
    return {
        "host": host,
        "port": port,
        "log_level": settings.log_level.lower(),
        # Our logging (api/logging.py, set up in each process) renders uvicorn's records;
        # RequestGuard logs each request once, so uvicorn's access line is off.
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
    }


def _worker_options(settings: Settings, workers: int, host: str, port: int) -> dict[str, Any]:
    return {
        "factory": True,
        "workers": workers,
        # A spawned worker answers pings only once it has imported the app: see the setting.
        "timeout_worker_healthcheck": settings.worker_start_seconds,
        **_uvicorn_options(settings, host, port),
    }


def _prepare_for_workers(settings: Settings) -> None:
    """What must happen once, before the workers start, and the settings they inherit.

    The workers are new interpreters that read their settings from the environment, so
    the ones `serve` decided (environment, issuer, the database's URL) are put there."""
    url = resolve_database_url(settings)  # starts the embedded PostgreSQL once, for all
    migrate_on_start = settings.migrate_on_start
    if migrate_on_start is None:
        migrate_on_start = settings.database_url is None
    if migrate_on_start:
        from api import migrate as migrations

        # Here, not in each worker: concurrent alembic upgrades would race.
        _with_engine(migrations.upgrade, url)
    if not settings.redis_url:
        structlog.get_logger(__name__).warning(
            "rate_limits_per_worker",
            detail="without REDIS_URL each worker counts rate-limit points on its own, "
            "so a caller may spend the budget once per worker",
        )
    os.environ.update(
        {
            "DATABASE_URL": url,
            "PORTFOLIO_MIGRATE_ON_START": "false",
            "PORTFOLIO_ENVIRONMENT": settings.environment.value,
            "PORTFOLIO_ISSUER": settings.issuer,
        }
    )
    get_settings.cache_clear()


def worker_app() -> Starlette:
    """The app of one worker process (uvicorn calls this in each)."""
    from api.app import create_app

    return ready_to_serve(create_app(get_settings()))


def ready_to_serve(application: Starlette) -> Starlette:
    """The last steps before a process serves: its process id in /metrics (workers share
    a port, so each scrape reaches one of them: the id tells which), and the garbage
    collector settled once the app's long-lived objects exist."""
    Gauge(
        "portfolio_worker_process_id",
        "Process id of the worker that answered this scrape.",
        registry=application.state.metrics.registry,
    ).set(os.getpid())
    settle_for_serving()
    return application


@migrate_app.command("upgrade")
def migrate_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Upgrade the database schema."""
    from api import migrate as migrations

    _with_engine(lambda engine: migrations.upgrade(engine, revision))
    typer.echo(f"upgraded to {revision}")


@migrate_app.command("downgrade")
def migrate_downgrade(
    revision: str = typer.Argument(..., help="Target revision, e.g. base."),
) -> None:
    """Downgrade the database schema."""
    from api import migrate as migrations

    _with_engine(lambda engine: migrations.downgrade(engine, revision))
    typer.echo(f"downgraded to {revision}")


@migrate_app.command("revision")
def migrate_revision(
    message: str = typer.Option(..., "--message", "-m", help="What the revision changes."),
) -> None:
    """Write the next numbered revision, autogenerated from the models (the database
    must be at head first). Review it: autogenerate misses triggers and data changes."""
    from api import migrate as migrations

    path = _with_engine(lambda engine: migrations.new_revision(engine, message))
    typer.echo(f"wrote {path}")


@migrate_app.command("current")
def migrate_current() -> None:
    """Print the database's revision and the code's head."""
    from api import migrate as migrations

    current = _with_engine(migrations.current_revision)
    typer.echo(f"database: {current or 'empty'}  head: {migrations.head_revision()}")


@app.command()
def seed(
    demo: Annotated[bool, typer.Option(help="Load the demo portfolio.")] = False,
    products: Annotated[
        int | None, typer.Option(help="Generate a benchmark portfolio of N products.", min=1)
    ] = None,
) -> None:
    """Load data (idempotent: existing data is left alone). Migrates first."""
    if demo == (products is not None):
        raise typer.BadParameter("pass exactly one of --demo or --products N")
    from sqlalchemy import text

    from api import migrate as migrations
    from domain.database import create_session_factory
    from domain.seed import demo_day, refresh_statistics, seed_demo, seed_generated

    async def run(engine: AsyncEngine) -> str:

        await migrations.upgrade(engine)
        async with create_session_factory(engine)() as session, session.begin():
            # One transaction loads the whole portfolio: at --products 2000 its COPYs
            # take longer than the statement timeout meant for requests.
            await session.execute(text("SET LOCAL statement_timeout = 0"))
            if demo:
                report = await seed_demo(session, await demo_day(session))
            else:
                assert products is not None
                report = await seed_generated(session, products)
            await refresh_statistics(session)
        return str(report)

    typer.echo(_with_engine(run))


@app.command("deliver-webhooks")
def deliver_webhooks(
    once: Annotated[
        bool, typer.Option(help="Deliver what is due, then exit (for cron or a test).")
    ] = False,
) -> None:
    """Send the webhook outbox's deliveries, retrying with backoff (see docs/api.md,
    "Webhooks"). Run as many as you like: they never take the same delivery."""
    from domain.database import create_session_factory
    from domain.webhooks import worker as webhook_worker
    from schema.webhook_payloads import PayloadRenderer

    async def run(engine: AsyncEngine) -> int:
        settings = get_settings()
        render = PayloadRenderer(create_session_factory(engine), settings)
        return await webhook_worker.run(engine, settings, render, once=once)

    typer.echo(f"{_with_engine(run)} deliveries attempted")


@app.command("reseal-webhook-secrets")
def reseal_webhook_secrets() -> None:
    """Seal every webhook secret under PORTFOLIO_WEBHOOK_SECRET_KEY: after setting a new
    key (the old one in PORTFOLIO_WEBHOOK_SECRET_OLD_KEYS until this has run), or once a
    key is set where secrets were kept in clear. See docs/security.md."""
    from domain.database import create_session_factory
    from domain.webhooks import endpoints as webhook_endpoints

    async def run(engine: AsyncEngine) -> int:
        async with create_session_factory(engine)() as session, session.begin():
            return await webhook_endpoints.reseal_secrets(session, get_settings())

    typer.echo(f"{_with_engine(run)} webhooks resealed")


@app.command("import-measurements")
def import_measurements(
    file: Annotated[
        Path, typer.Argument(help="A .csv file with a header, or .ndjson/.jsonl.", exists=True)
    ],
    batch_size: Annotated[
        int, typer.Option(help="Measurements per transaction.", min=1, max=10_000)
    ] = 10_000,
) -> None:
    """Record KPI measurements from a file; idempotent by (source, externalId).

    Each batch is its own transaction, so a large file makes progress as it goes;
    re-running it after a failure stores only what is missing. Exits with 1 when
    any line was rejected.
    """
    from domain.database import create_session_factory
    from domain.services import measurements
    from domain.services.measurement_files import BadLine, read_measurements
    from domain.services.writes import Actor

    with file.open("rb") as handle:
        lines = sum(1 for _ in handle)

    async def run(engine: AsyncEngine) -> tuple[measurements.IngestResult, list[str]]:
        total = measurements.IngestResult()
        problems: list[str] = []
        sessions = create_session_factory(engine)
        batch: list[tuple[int, measurements.MeasurementIn]] = []

        async def send() -> None:
            async with sessions() as session, session.begin():
                result = await measurements.record(session, Actor(), [m for _, m in batch])
            total.inserted += result.inserted
            total.duplicates += result.duplicates
            total.rejected += result.rejected
            problems.extend(f"line {batch[_index(e.field)][0]}: {e.message}" for e in result.errors)
            batch.clear()

        with typer.progressbar(length=lines, label="Importing") as progress:
            for line, record in read_measurements(file):
                total.received += 1
                if isinstance(record, BadLine):
                    total.rejected += 1
                    problems.append(f"line {line}: {record.message}")
                else:
                    batch.append((line, record))
                if len(batch) >= batch_size:
                    progress.update(len(batch))
                    await send()
            if batch:
                await send()
            progress.update(lines)
        return total, problems

    result, problems = _with_engine(run)
    for problem in problems[:20]:
        typer.echo(problem, err=True)
    if len(problems) > 20:
        typer.echo(f"... and {len(problems) - 20} more", err=True)
    typer.echo(
        f"received {result.received}, inserted {result.inserted}, "
        f"duplicates {result.duplicates}, rejected {result.rejected}"
    )
    if result.rejected:
        raise typer.Exit(code=1)


def _index(field: str | None) -> int:
    """The batch index in a user error's field, e.g. ``measurements.3.kpi_key`` -> 3."""
    return int((field or "measurements.0").split(".")[1])


ADMIN_PASSWORD_ENV = "PORTFOLIO_ADMIN_PASSWORD"
CLIENT_SECRET_ENV = "PORTFOLIO_CLIENT_SECRET"


def _secret(env: str, what: str, *, confirm: bool) -> str:
    """A secret never given on the command line (where shells and `ps` keep it): from
    ``env``, else a hidden prompt on a terminal, else the first line of stdin."""

    if value := os.environ.get(env):
        return value
    if sys.stdin.isatty():
        return str(typer.prompt(what, hide_input=True, confirmation_prompt=confirm))
    return sys.stdin.readline().rstrip("\r\n")


@app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(help="Sign-in e-mail of the administrator.")],
    name: Annotated[str, typer.Option(help="Display name.")] = "Administrator",
) -> None:
    """Create a user with the admin role (every scope).

    The password (at least 12 characters) comes from $PORTFOLIO_ADMIN_PASSWORD, else a
    prompt on a terminal, else the first line of stdin."""
    password = _secret(ADMIN_PASSWORD_ENV, "Password", confirm=True)
    from auth import identity
    from domain.database import create_session_factory

    async def run(engine: AsyncEngine) -> str:
        async with create_session_factory(engine)() as session, session.begin():
            # No token reaches the command line: whoever runs it is the operator and may
            # grant every scope (identity.OPERATOR).
            user = await identity.create_user(
                session,
                identity.OPERATOR,
                email=email,
                display_name=name,
                password=password,
                roles=["admin"],
            )
            return user.email

    typer.echo(f"created admin {_refusals(lambda: _with_engine(run))}")


@app.command("create-client")
def create_client(
    name: Annotated[str, typer.Option(help="Display name, shown on the consent page.")],
    scopes: Annotated[str, typer.Option(help='Space-separated scopes, e.g. "portfolio:read".')],
    grant: Annotated[
        list[str],
        typer.Option(help="client_credentials, authorization_code, refresh_token (repeatable)."),
    ],
    redirect_uri: Annotated[
        list[str] | None, typer.Option(help="Where codes may be sent (repeatable).")
    ] = None,
    public: Annotated[
        bool, typer.Option(help="A public client (browser/native app, PKCE, no secret).")
    ] = False,
) -> None:
    """Register an OAuth client and print its credentials once."""
    from auth import identity
    from domain.database import create_session_factory

    async def run(engine: AsyncEngine) -> tuple[str, str | None]:
        async with create_session_factory(engine)() as session, session.begin():
            client, secret = await identity.create_client(
                session,
                # As the operator, with every scope (see create-admin).
                identity.OPERATOR,
                name=name,
                grant_types=grant,
                scopes=scopes.split(),
                redirect_uris=redirect_uri or [],
                confidential=not public,
            )
            return client.client_id, secret

    client_id, secret = _refusals(lambda: _with_engine(run))
    typer.echo(f"client_id:     {client_id}")
    if secret:
        typer.echo(f"client_secret: {secret}")
        typer.echo("The secret is shown only now: store it safely.")


@app.command("dashboard-client")
def dashboard_client(
    url: Annotated[
        list[str],
        typer.Option(
            help="The dashboard's address, e.g. https://portfolio.example.com/ (repeatable)."
        ),
    ],
) -> None:
    """Register the dashboard's public client (PKCE, refresh tokens), or add addresses to it.

    The page at / signs people in through it; `serve --demo` registers it for its own
    address."""
    from auth import identity
    from domain.database import create_session_factory

    async def run(engine: AsyncEngine) -> list[str]:
        async with create_session_factory(engine)() as session, session.begin():
            # As the operator, with every scope (see create-admin).
            client = await identity.dashboard_client(session, identity.OPERATOR, url)
            return list(client.redirect_uris)

    addresses = _refusals(lambda: _with_engine(run))
    typer.echo(f"client_id: {identity.DASHBOARD_CLIENT_ID}")
    typer.echo(f"redirect URIs: {' '.join(addresses)}")


@app.command("token")
def token(
    client_id: Annotated[str, typer.Option(help="The client's id (from create-client).")],
    scope: Annotated[
        str | None, typer.Option(help="Space-separated scopes; default: all the client's.")
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(help="The server; default: http://HOST:PORT from the settings."),
    ] = None,
) -> None:
    """Print an access token for a client (client credentials grant), for scripts:
    TOKEN=$(portfolio token --client-id ID). The secret comes from
    $PORTFOLIO_CLIENT_SECRET, else a prompt on a terminal, else stdin's first line."""

    settings = get_settings()
    base = (url or f"http://{settings.host}:{settings.port}").rstrip("/")
    secret = _secret(CLIENT_SECRET_ENV, "Client secret", confirm=False)
    form = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    try:
        response = httpx.post(f"{base}/oauth/token", data=form, auth=(client_id, secret))
    except httpx.HTTPError as error:
        typer.echo(f"no answer from {base}: {error}", err=True)
        raise typer.Exit(code=1) from None
    body = (
        response.json()
        if response.headers.get("content-type", "").startswith("application/json")
        else {}
    )
    if response.status_code != 200 or "access_token" not in body:
        reason = body.get("error_description") or body.get("error") or response.text[:200]
        typer.echo(f"{base}/oauth/token refused: {reason}", err=True)
        raise typer.Exit(code=1)
    typer.echo(body["access_token"])


@app.command("rotate-keys")
def rotate_keys() -> None:
    """Sign new tokens with a new key (tokens signed before stay valid until they expire)."""
    from auth.services import AuthServices
    from domain.database import create_session_factory

    settings = get_settings()

    async def run(engine: AsyncEngine) -> str:
        auth = AuthServices.create(settings, create_session_factory(engine))
        try:
            return await auth.keys.rotate()
        finally:
            await auth.external.aclose()

    typer.echo(f"signing with key {_with_engine(run)}")


def _refusals(work: Callable[[], T]) -> T:
    """Run a service call; print its user errors and exit 1 when it is refused."""
    from domain.services.writes import Refused

    try:
        return work()
    except Refused as refused:
        for error in refused.errors:
            typer.echo(f"{error.field or 'input'}: {error.message}", err=True)
        raise typer.Exit(code=1) from None


@app.command("persist-queries")
def persist_queries(
    files: Annotated[
        list[Path], typer.Argument(help="GraphQL documents, one per file.", exists=True)
    ],
) -> None:
    """Register documents as persisted queries; prints each file's SHA-256. Every document
    must parse and validate against the schema, or nothing is registered."""
    from domain.database import create_session_factory
    from domain.services.persisted import PersistedQueryStore
    from schema.sdl import document_problems

    documents = [f.read_text(encoding="utf-8") for f in files]
    refused = [
        f"{file}: {problem}"
        for file, document in zip(files, documents, strict=True)
        for problem in document_problems(document)
    ]
    if refused:
        typer.echo("\n".join(refused), err=True)
        raise typer.Exit(1)

    async def run(engine: AsyncEngine) -> list[str]:
        store = PersistedQueryStore()
        async with create_session_factory(engine)() as session, session.begin():
            return [await store.register(session, document) for document in documents]

    for file, sha256 in zip(files, _with_engine(run), strict=True):
        typer.echo(f"{sha256}  {file}")


@app.command("export-schema")
def export_schema(
    output: Annotated[Path, typer.Option(help="Where to write the SDL; - for stdout.")] = Path(
        "schema.graphql"
    ),
    federation: Annotated[
        bool, typer.Option(help="The Apollo Federation 2 subgraph SDL (for rover/composition).")
    ] = False,
) -> None:
    """Write the GraphQL schema (SDL) that the code defines."""
    from schema.sdl import render_sdl

    sdl = render_sdl(federation=federation)
    if str(output) == "-":
        typer.echo(sdl, nl=False)
    else:
        output.write_text(sdl, encoding="utf-8")
        typer.echo(f"wrote {output}")


if __name__ == "__main__":
    app()
