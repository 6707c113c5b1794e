"""Runtime configuration from environment variables, documented in docs/configuration.md."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class ExternalIssuer(BaseModel):
    """An external OpenID Connect provider whose tokens are accepted."""

    issuer: str
    audience: str = "portfolio-graph"
    # The claim listing the caller's groups or roles, and how they map to local role names.
    roles_claim: str = "groups"
    role_mapping: dict[str, str] = {}
    # The claim identifying the user locally (matched against users.email).
    email_claim: str = "email"
    # Also give the token the roles granted to the local account with its e-mail. Off by
    # default: only for an issuer that proves addresses, and then only when the token says
    # so (`email_verified: true`); otherwise anyone able to set that claim at the issuer
    # would get a local administrator's roles.
    map_roles_by_email: bool = False


class Settings(BaseSettings):
    """Every setting is an environment variable with the ``PORTFOLIO_`` prefix,
    except ``DATABASE_URL`` which keeps its conventional name."""

    model_config = SettingsConfigDict(env_prefix="PORTFOLIO_", extra="ignore")

    environment: Environment = Field(
        default=Environment.PRODUCTION,
        description="development enables GraphiQL and open reads; production is the safe default.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias="DATABASE_URL",
        description="PostgreSQL URL; unset means an embedded PostgreSQL in data_dir.",
    )
    data_dir: Path = Field(
        default=Path(user_data_dir("portfolio-graph")),
        description="Where the embedded PostgreSQL keeps its data.",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    # Connections kept open. Overflow ones are opened and closed per burst (a backend
    # fork and type introspection each), so size the pool for the usual concurrency.
    db_pool_size: int = 20
    db_max_overflow: int = 10
    db_pool_timeout_seconds: float = Field(
        default=5.0, description="Wait for a free connection before answering 503."
    )
    # The driver pool of the paths outside any ORM session (known reads and updates,
    # token checks, subscriptions' reads: ``domain.database.DriverPool``), kept open.
    # 10: a worker's whole budget (20 + 10 + 10 + 1 listening) lets two workers, one
    # per core of a small host, fit PostgreSQL's default max_connections (100).
    db_read_pool_size: int = Field(
        default=10,
        ge=1,
        description="Driver connections of the known reads and updates, on top of the "
        "sessions' pool and its overflow.",
    )
    db_connect_timeout_seconds: float = Field(default=5.0, description="Connecting to PostgreSQL.")
    max_page_size: int = Field(default=100, description="Cap on first/last of every connection.")
    anonymous_scopes: list[str] | None = Field(
        default=None,
        description=(
            "Scopes granted to requests without a token. Unset: every read scope in "
            "development, none in production."
        ),
    )
    migrate_on_start: bool | None = Field(
        default=None,
        description="Run migrations when the server starts. Unset: only for the embedded database.",
    )
    # Limits (see docs/api.md, "Limits and rate limits").
    max_query_cost: int = Field(default=1000, description="Most points one query may cost.")
    max_query_depth: int = Field(default=12, description="Deepest nesting of a query.")
    max_aliases: int = Field(default=30, description="Most aliases in one document.")
    max_root_fields: int = Field(default=10, description="Most root fields in one operation.")
    max_tokens: int = Field(default=5000, description="Most lexical tokens in one document.")
    max_document_bytes: int = Field(
        default=100_000,
        ge=1,
        description="Largest ad-hoc GraphQL document, in UTF-8 bytes, refused before it is "
        "parsed (DOCUMENT_TOO_LARGE); persisted documents may be larger.",
    )
    rate_limit_points: int = Field(
        default=50_000, description="Points a caller may spend per rate-limit window."
    )
    rate_limit_window_seconds: int = Field(default=3600, ge=1)
    redis_url: str | None = Field(
        default=None,
        validation_alias="REDIS_URL",
        description="Redis shared by replicas for rate-limit counters; unset: in-process.",
    )
    max_body_bytes: int = Field(
        default=5_000_000, description="Largest request body (a 10,000-measurement ingest fits)."
    )
    large_body_bytes: int = Field(
        default=262_144,
        ge=0,
        description="A request with a larger body waits for one of "
        "`PORTFOLIO_LARGE_REQUESTS_AT_ONCE` slots: before reading it if Content-Length "
        "declares it, or once that much of a chunked body has arrived.",
    )
    large_requests_at_once: int = Field(
        default=2,
        ge=1,
        description="Large requests (bulk ingest) handled at once per worker; the others "
        "wait, within their timeout. Each holds ~10 MB while it runs.",
    )
    max_concurrent_requests: int | None = Field(
        default=None,
        ge=0,
        description="Requests handled at once per worker; past them and a short line "
        "(`PORTFOLIO_MAX_QUEUED_REQUESTS`) a request is answered 503 OVERLOADED with "
        "Retry-After at once. Unset: the connections one worker may open "
        "(`db_pool_size` + `db_max_overflow`); 0: no limit.",
    )
    max_queued_requests: int | None = Field(
        default=None,
        ge=0,
        description="Requests that may wait for one of those places; unset: four per "
        "place (bursts wait, sustained overload is shed); 0: none wait.",
    )
    statement_timeout_ms: int = Field(default=10_000, description="PostgreSQL statement_timeout.")
    db_plan_cache_mode: Literal["auto", "force_generic_plan", "force_custom_plan"] = Field(
        default="force_generic_plan",
        description="PostgreSQL plan_cache_mode on the app's connections. With `auto`, "
        "PostgreSQL kept planning a compiled Relay page anew on every execution (about "
        "half of its time), its generic plan estimated dearer for a LIMIT parameter.",
    )
    db_random_page_cost: float | None = Field(
        default=1.1,
        gt=0,
        description="PostgreSQL random_page_cost on the app's connections (unset: the "
        "server's, 4 by default, which models spinning disks). 1.1, the usual value for "
        "SSDs and cached data, lets the planner probe the link tables' indexes per row "
        "in nested lists (`isBlocked`, a page's connections) instead of scanning them: "
        "a constraint board's statement took 7.0 ms with 4 and 2.3 ms with 1.1.",
    )

    @field_validator("db_random_page_cost", mode="before")
    @classmethod
    def _empty_is_the_servers(cls, value: object) -> object:
        """``PORTFOLIO_DB_RANDOM_PAGE_COST=`` (empty): the server's value."""
        return None if value == "" else value

    transaction_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Times a request is run when PostgreSQL aborts its transaction as a "
        "deadlock or serialization failure: rolled back whole and run again while nothing "
        "of its answer was sent; after the last attempt the aborted mutation is refused "
        "(CONFLICT).",
    )
    request_timeout_seconds: float = Field(default=30.0, description="Longest request execution.")
    worker_start_seconds: int = Field(
        default=60,
        ge=5,
        description=(
            "With --workers: how long a worker may take to answer the supervisor's health "
            "ping, starting up included, before it is killed and replaced. A spawned worker "
            "imports the whole app first (seconds of CPU): uvicorn's 5 s made a loaded host "
            "kill and restart workers in a loop."
        ),
    )
    shutdown_grace_seconds: int = Field(
        default=30,
        description=(
            "On SIGTERM, how long in-flight requests may finish; past it they are cancelled "
            "and their transactions rolled back."
        ),
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed to call the API from a browser."
    )
    persisted_queries_only: bool = Field(
        default=False,
        description="Run only documents registered with `portfolio persist-queries`.",
    )
    persisted_queries_register: bool | None = Field(
        default=None,
        description="Let requests register documents (automatic persisted queries): only "
        "documents that parse, validate and fit PORTFOLIO_MAX_DOCUMENT_BYTES are stored. "
        "Unset: on in development, off in production, where `portfolio persist-queries` "
        "registers them.",
    )
    federation: bool = Field(
        default=False,
        description="Serve the schema as an Apollo Federation 2 subgraph (`_service`, "
        "`_entities`).",
    )
    compiled_reads: bool = Field(
        default=True,
        description="Answer covered queries with one SQL statement per root field.",
    )
    response_cache_chars: int = Field(
        default=16_000_000,
        ge=0,
        description="Size of the known reads' answers kept until the data changes, in "
        "characters of JSON, plus its key (document and variables) and 600 per answer (0: none). Needs LISTEN on the database (not through a transaction-pooling "
        "PgBouncer); while it cannot listen, nothing is kept.",
    )
    # Subscriptions (see docs/api.md, "Subscriptions").
    max_subscriptions_per_connection: int = Field(
        default=20, ge=1, description="Most subscriptions open at once on one WebSocket."
    )
    max_subscriptions_per_caller: int = Field(
        default=100,
        ge=1,
        description="Most subscriptions one caller (user, client or address) has open at once "
        "on one server process.",
    )
    subscription_queue_size: int = Field(
        default=100,
        ge=1,
        description="Changes waiting for one subscription; a subscriber that lets more pile "
        "up is disconnected (close code 4413).",
    )
    subscription_init_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Time a new WebSocket has to send connection_init."
    )
    # Webhooks (see docs/api.md, "Webhooks").
    webhook_worker: bool | None = Field(
        default=None,
        description="Run the webhook delivery worker inside each server process. Unset: on "
        "in development (and `--demo`), off in production, where you either set it to true "
        "or run `portfolio deliver-webhooks` beside the servers.",
    )
    webhook_secret_key: str | None = Field(
        default=None,
        description="Key sealing webhook signing secrets at rest (AES-256-GCM): base64 of 32 "
        "random bytes, e.g. `openssl rand -base64 32`. Required in production to register "
        "webhooks; unset in development, secrets are stored in clear.",
    )
    webhook_secret_old_keys: list[str] = Field(
        default_factory=list,
        description="Earlier values of `PORTFOLIO_WEBHOOK_SECRET_KEY` (JSON list) that still "
        "open secrets, while `portfolio reseal-webhook-secrets` moves them to the new key.",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Longest wait for a webhook receiver's answer, per attempt."
    )
    webhook_max_attempts: int = Field(
        default=8, ge=1, description="Attempts of one delivery before it is marked failed."
    )
    webhook_backoff_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Wait before a delivery's first retry; doubled at each further attempt "
        "(capped by `PORTFOLIO_WEBHOOK_BACKOFF_MAX_SECONDS`), with random jitter of up "
        "to half of it.",
    )
    webhook_backoff_max_seconds: float = Field(
        default=3600.0, ge=0, description="Longest wait between two attempts of a delivery."
    )
    webhook_disable_after_failures: int = Field(
        default=20,
        ge=1,
        description="Consecutive failed attempts (of any delivery) after which an endpoint "
        "is disabled; one success resets the count.",
    )
    webhook_batch_size: int = Field(
        default=20, ge=1, description="Deliveries one worker claims and sends at once."
    )
    webhook_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        description="Wait of an idle worker before it looks for due deliveries again (the "
        "worker in a server process is also woken by each committed change).",
    )
    webhook_secret_overlap_seconds: int = Field(
        default=86_400,
        ge=0,
        description="After a webhook's secret is rotated, how long deliveries are signed "
        "with the old secret too.",
    )
    webhook_allowed_networks: list[str] = Field(
        default_factory=list,
        description="In production, networks (CIDR, JSON list) a webhook target may resolve "
        "to although they are not public (loopback, private, link-local).",
    )
    log_level: str = "INFO"

    # OAuth 2 (see docs/auth.md).
    issuer: str = Field(
        default="http://127.0.0.1:8000",
        description="Issuer identifier of the built-in authorization server (its public URL).",
    )
    audience: str = Field(
        default="portfolio-graph", description="Audience (`aud`) that access tokens must carry."
    )
    access_token_ttl_seconds: int = Field(default=900, ge=60, le=86_400)
    refresh_token_ttl_seconds: int = Field(default=30 * 86_400, ge=3600)
    clock_leeway_seconds: int = Field(default=30, ge=0, le=300)
    external_issuers: list[ExternalIssuer] = Field(
        default_factory=list,
        description="Other OpenID Connect issuers whose access tokens are accepted (JSON list).",
    )
    login_max_failures: int = Field(
        default=5, description="Failed logins per account or address before a pause."
    )
    login_window_seconds: int = Field(default=900, description="Length of that pause window.")
    client_auth_max_failures: int = Field(
        default=20,
        ge=1,
        description="Failed client authentications per client id, from all addresses, "
        "before that client id pauses (per address: login_max_failures).",
    )
    client_auth_window_seconds: int = Field(
        default=60,
        ge=1,
        description="Length of that pause window: short, so an attacker cannot keep a client "
        "locked out without failing again and again from many addresses.",
    )

    @property
    def is_development(self) -> bool:
        return self.environment is Environment.DEVELOPMENT

    @property
    def runs_webhook_worker(self) -> bool:
        if self.webhook_worker is None:
            return self.is_development
        return self.webhook_worker


@lru_cache
def get_settings() -> Settings:
    return Settings()
