"""The root Query: Relay node lookups, one connection and one lookup per entity."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import strawberry

from auth import models as auth_models
from auth.scopes import Scope
from domain import models
from domain.errors import InvalidInput
from domain.services import feed
from domain.webhooks import endpoints as webhook_endpoints
from schema.guards import NODE_TYPES
from schema.ids import decode_id
from schema.permissions import guarded, require
from schema.types import filters
from schema.types.audit import AuditEvent
from schema.types.constraint import TechnicalConstraint
from schema.types.external_ref import by_external_ref_lookup
from schema.types.feed import ChangeEntityType, FeedPage, feed_event, readable_types
from schema.types.fields import by_key_as_of_lookup, by_key_lookup, root_connection
from schema.types.glossary import GlossaryTerm
from schema.types.identity import OAuthClient, Role, User, Viewer, viewer_of
from schema.types.initiative import Initiative
from schema.types.kpi import Kpi, KpiMeasurement
from schema.types.node import Node
from schema.types.product import Product
from schema.types.team import Team
from schema.types.webhook import Webhook, webhook_of

NODE_CLASSES = [
    Team,
    Product,
    Initiative,
    TechnicalConstraint,
    Kpi,
    KpiMeasurement,
    GlossaryTerm,
    AuditEvent,
    User,
    Role,
    OAuthClient,
]
MAX_NODES = 100

NODE_SCOPES = (
    "Requires the scope of each object's type: audit:read for AuditEvent, admin:users for User "
    "and Role, admin:clients for OAuthClient, portfolio:read for every other type."
)


async def _load_node(info: strawberry.Info, global_id: str, field: str) -> Any:
    type_name, pk = decode_id(global_id, field=field)
    known = NODE_TYPES.get(type_name)
    if known is None:
        return None  # well-formed but names no type of ours: nothing to find
    model, scope = known
    require(info.context, scope)
    return await info.context.by_id(model).load(pk)


@strawberry.type(
    description="A point budget per caller and window: each query costs points (objects 1, "
    "connections × first/last) charged before it runs."
)
class RateLimit:
    limit: int = strawberry.field(description="Points per window.")
    cost: int = strawberry.field(description="Points this query cost.")
    remaining: int = strawberry.field(description="Points left in this window.")
    reset_at: datetime = strawberry.field(description="When the window starts afresh.")


@strawberry.type(description="Reads of the portfolio graph.")
class Query:
    @strawberry.field(
        description=f"Fetch any object by its global ID; null when it does not exist. {NODE_SCOPES}"
    )
    async def node(
        self,
        info: strawberry.Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="A global ID.")],
    ) -> Node | None:
        return await _load_node(info, id, "id")

    @strawberry.field(
        description=f"Fetch up to {MAX_NODES} objects by global ID, in the order given; null "
        f"for each that does not exist. {NODE_SCOPES}"
    )
    async def nodes(
        self,
        info: strawberry.Info,
        ids: Annotated[list[strawberry.ID], strawberry.argument(description="Global IDs.")],
    ) -> list[Node | None]:
        if len(ids) > MAX_NODES:
            raise InvalidInput(f"`ids` takes at most {MAX_NODES} IDs; got {len(ids)}.", field="ids")
        # One awaitable per ID: the loads batch together, and an ID the caller may not
        # read (or cannot be decoded) is null with its own error at `nodes.<index>`,
        # not the end of the whole list.
        return [_load_node(info, global_id, "ids") for global_id in ids]  # type: ignore[misc]

    teams = root_connection(
        models.Team, Team, filters.TeamFilter, filters.TeamOrder, "Teams of the organisation."
    )
    team = by_key_lookup(models.Team, models.Team.key, Team, "A team by key.")
    products = root_connection(
        models.Product, Product, filters.ProductFilter, filters.ProductOrder, "Products."
    )
    product = by_key_as_of_lookup(
        models.Product, models.Product.key, Product, "Product", "A product by key."
    )
    product_by_external_ref = by_external_ref_lookup(
        models.Product, "Product", Product, "A product by one of its external references."
    )
    initiatives = root_connection(
        models.Initiative,
        Initiative,
        filters.InitiativeFilter,
        filters.InitiativeOrder,
        "Initiatives of the roadmap, at every level of the hierarchy.",
    )
    initiative = by_key_as_of_lookup(
        models.Initiative, models.Initiative.key, Initiative, "Initiative", "An initiative by key."
    )
    initiative_by_external_ref = by_external_ref_lookup(
        models.Initiative,
        "Initiative",
        Initiative,
        "An initiative by one of its external references.",
    )
    technical_constraints = root_connection(
        models.TechnicalConstraint,
        TechnicalConstraint,
        filters.TechnicalConstraintFilter,
        filters.TechnicalConstraintOrder,
        "Technical constraints.",
    )
    technical_constraint = by_key_lookup(
        models.TechnicalConstraint,
        models.TechnicalConstraint.key,
        TechnicalConstraint,
        "A technical constraint by key.",
    )
    technical_constraint_by_external_ref = by_external_ref_lookup(
        models.TechnicalConstraint,
        "TechnicalConstraint",
        TechnicalConstraint,
        "A technical constraint by one of its external references.",
    )
    kpis = root_connection(models.Kpi, Kpi, filters.KpiFilter, filters.KpiOrder, "KPIs.")
    kpi = by_key_lookup(models.Kpi, models.Kpi.key, Kpi, "A KPI by key.")
    kpi_by_external_ref = by_external_ref_lookup(
        models.Kpi, "Kpi", Kpi, "A KPI by one of its external references."
    )
    glossary_terms = root_connection(
        models.GlossaryTerm,
        GlossaryTerm,
        filters.GlossaryTermFilter,
        filters.GlossaryTermOrder,
        "The glossary shared by business and technology.",
    )

    audit_events = root_connection(
        models.AuditEvent,
        AuditEvent,
        filters.AuditEventFilter,
        filters.AuditEventOrder,
        "The audit trail: every change, oldest first by default.",
        Scope.AUDIT_READ,
    )

    users = root_connection(
        auth_models.User, User, filters.UserFilter, filters.UserOrder, "Users.", Scope.ADMIN_USERS
    )
    roles = root_connection(
        auth_models.Role, Role, filters.RoleFilter, filters.RoleOrder, "Roles.", Scope.ADMIN_USERS
    )
    oauth_clients = root_connection(
        auth_models.OAuthClient,
        OAuthClient,
        filters.OAuthClientFilter,
        filters.OAuthClientOrder,
        "OAuth clients.",
        Scope.ADMIN_CLIENTS,
    )

    @strawberry.field(**guarded("Every webhook, oldest first.", Scope.ADMIN_WEBHOOKS))
    async def webhooks(self, info: strawberry.Info) -> list[Webhook]:
        rows = await info.context.run(webhook_endpoints.every_endpoint)
        return [webhook_of(row) for row in rows]

    @strawberry.field(
        description="The caller's rate-limit budget after this query was charged. Public: needs "
        "no scope."
    )
    def rate_limit(self, info: strawberry.Info) -> RateLimit | None:
        budget = info.context.budget
        if budget is None:
            return None
        return RateLimit(
            limit=budget.limit,
            cost=budget.cost,
            remaining=budget.remaining,
            reset_at=datetime.fromtimestamp(budget.reset_at, UTC),
        )

    @strawberry.field(
        description="Who is calling and with which effective scopes. Public: needs no scope."
    )
    async def viewer(self, info: strawberry.Info) -> Viewer:
        return await viewer_of(info)

    @strawberry.field(
        name="changes",
        **guarded(
            "The change feed: creations, updates, archivals, links and unlinks of products, "
            "initiatives, technical constraints and KPIs, oldest first, in an order a client "
            "resumes from (`since`) without missing or repeating an event, even when "
            "transactions commit out of order. Archived objects come with a tombstone. Only "
            "the types the caller may read are included.",
            Scope.PORTFOLIO_READ,
        ),
    )
    async def changes(
        self,
        info: strawberry.Info,
        since: Annotated[
            str | None,
            strawberry.argument(
                description="A cursor from an earlier page or event; null for the beginning."
            ),
        ] = None,
        types: Annotated[
            list[ChangeEntityType] | None,
            strawberry.argument(description="Only these types; null for every type."),
        ] = None,
        first: Annotated[
            int,
            strawberry.argument(description="At most this many events (0 to 100)."),
        ] = feed.DEFAULT_PAGE,
    ) -> FeedPage:
        feed.check_first(first)
        position = feed.START if since is None else feed.Position.decode(since)
        wanted = readable_types(info.context.principal.scopes, types)
        page = await info.context.run(lambda s: feed.read(s, position, wanted, first))
        return FeedPage(
            events=[feed_event(e) for e in page.events],
            cursor=page.position.encode(),
            has_more=page.has_more,
        )

    @strawberry.field(**guarded("A glossary term by its exact term.", Scope.PORTFOLIO_READ))
    async def glossary_term(
        self,
        info: strawberry.Info,
        term: Annotated[str, strawberry.argument(description="The term, exactly.")],
    ) -> GlossaryTerm | None:
        return await info.context.by_key(models.GlossaryTerm, models.GlossaryTerm.term).load(term)
