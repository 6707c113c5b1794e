"""The change feed's types: a page of events, each event, and the tombstone of an
archived object (``domain.services.feed`` says how the order and the cursor work)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import cast

import strawberry
from strawberry.scalars import JSON

from auth.scopes import Scope
from domain.models import AuditAction
from domain.services.feed import FeedEvent as StoredFeedEvent
from domain.services.sync import REFS_FIELD
from schema.guards import NODE_TYPES, type_scopes
from schema.ids import encode_id
from schema.permissions import guarded
from schema.types.audit import presenter
from schema.types.external_ref import ExternalRef
from schema.types.node import Node


@strawberry.enum(description="The kinds of object the change feed reports on.")
class ChangeEntityType(Enum):
    PRODUCT = strawberry.enum_value("Product", description="Products.")
    INITIATIVE = strawberry.enum_value("Initiative", description="Initiatives.")
    TECHNICAL_CONSTRAINT = strawberry.enum_value(
        "TechnicalConstraint", description="Technical constraints."
    )
    KPI = strawberry.enum_value("Kpi", description="KPIs.")


@strawberry.enum(description="What a change-feed event did to its object.")
class FeedChange(Enum):
    CREATED = strawberry.enum_value("CREATE", description="It was created.")
    UPDATED = strawberry.enum_value(
        "UPDATE", description="Its stored fields changed (status changes included)."
    )
    ARCHIVED = strawberry.enum_value(
        "ARCHIVE", description="It was archived: it left every list; see `tombstone`."
    )
    LINKED = strawberry.enum_value("LINK", description="It was linked to `linkedId`.")
    UNLINKED = strawberry.enum_value("UNLINK", description="Its link to `linkedId` was removed.")


@strawberry.type(
    description="What is left of an archived object: enough for a sync to delete its copy."
)
class Tombstone:
    id: strawberry.ID = strawberry.field(description="The archived object's global ID.")
    type: ChangeEntityType = strawberry.field(description="The archived object's type.")
    key: str = strawberry.field(description="The archived object's key.")
    archived_at: datetime = strawberry.field(description="When it was archived.")
    entity_type: strawberry.Private[str]
    entity_pk: strawberry.Private[int]

    @strawberry.field(
        description="Its IDs in other systems (its `externalRefs`, which archiving keeps), "
        "ordered by system: a sync deletes the other system's copy by that system's own ID. "
        "Empty when the caller may not read the object's `externalRefs`."
    )
    async def external_refs(self, info: strawberry.Info) -> list[ExternalRef]:
        # The scopes come from the object's own `externalRefs` declaration (one rule).
        needed = presenter(info.schema).table(self.entity_type)[REFS_FIELD].scopes
        if not needed <= info.context.principal.scopes:
            return []
        refs = await info.context.external_refs(self.entity_type).load(self.entity_pk)
        return cast(list[ExternalRef], refs)


@strawberry.type(
    description="One change of the portfolio, in commit-safe order; `cursor` resumes after it."
)
class FeedEvent:
    stored: strawberry.Private[StoredFeedEvent]

    @strawberry.field(
        description="Pass as `changes(since:)` to continue after this event (opaque)."
    )
    def cursor(self) -> str:
        return self.stored.position.encode()

    @strawberry.field(description="What happened.")
    def change(self) -> FeedChange:
        return FeedChange(self.stored.event.action.value)

    @strawberry.field(description="The type of the object the event is about.")
    def entity_type(self) -> ChangeEntityType:
        return ChangeEntityType(self.stored.event.entity_type)

    @strawberry.field(description="The global ID of the object the event is about.")
    def entity_id(self) -> strawberry.ID:
        event = self.stored.event
        return strawberry.ID(encode_id(event.entity_type, event.entity_id))

    @strawberry.field(description="The object's key (as it is now).")
    def key(self) -> str | None:
        return self.stored.key

    @strawberry.field(description="When the change was made (its transaction's time).")
    def occurred_at(self) -> datetime:
        return self.stored.event.occurred_at

    @strawberry.field(
        **guarded(
            "The object as it is now, through the same guards as `node`; null once it is "
            "archived (see `tombstone`).",
            Scope.PORTFOLIO_READ,
        )
    )
    async def node(self, info: strawberry.Info) -> Node | None:
        event = self.stored.event
        if self.stored.archived_at is not None:
            return None
        model, _ = NODE_TYPES[event.entity_type]
        return cast(Node | None, await info.context.by_id(model).load(event.entity_id))

    @strawberry.field(
        description="Set when the object is archived now (on its ARCHIVED event and on any "
        "earlier event read later): what a sync needs to delete its copy."
    )
    def tombstone(self) -> Tombstone | None:
        stored = self.stored
        if stored.archived_at is None or stored.key is None:
            return None
        return Tombstone(
            id=self.entity_id(),
            type=self.entity_type(),
            key=stored.key,
            archived_at=stored.archived_at,
            entity_type=stored.event.entity_type,
            entity_pk=stored.event.entity_id,
        )

    @strawberry.field(
        description="For LINKED and UNLINKED: the global ID of the object at the other end; "
        "null when the caller may not read that object's type."
    )
    def linked_id(self, info: strawberry.Info) -> strawberry.ID | None:
        event = self.stored.event
        target = event.changes.get("target")
        if event.action not in (AuditAction.LINK, AuditAction.UNLINK) or not isinstance(
            target, dict
        ):
            return None
        target_type = str(target.get("type"))
        if not type_scopes(target_type) <= info.context.principal.scopes:
            return None
        return strawberry.ID(encode_id(target_type, int(target["id"])))

    @strawberry.field(
        **guarded(
            "The values before and after, as the audit trail shows them (`AuditEvent.changes`): "
            "only fields the caller could read on the object itself.",
            Scope.AUDIT_READ,
        )
    )
    def changes(self, info: strawberry.Info) -> JSON:
        event = self.stored.event
        shown = presenter(info.schema).present(
            event.entity_type, event.changes, info.context.principal.scopes
        )
        return cast(JSON, shown)


@strawberry.type(description="A page of the change feed.")
class FeedPage:
    events: list[FeedEvent] = strawberry.field(description="The events, oldest first.")
    cursor: str = strawberry.field(
        description="Pass as `since` to continue: after the last event of this page, or "
        "where this page started when it is empty. Store it once the page is applied."
    )
    has_more: bool = strawberry.field(
        description="More events are ready now; false means the feed is caught up (for now)."
    )


def feed_event(stored: StoredFeedEvent) -> FeedEvent:
    return FeedEvent(stored=stored)


def readable_types(scopes: frozenset[str], asked: list[ChangeEntityType] | None) -> list[str]:
    """The audit trail's type names of ``asked`` (every feed type when None) that a caller
    with ``scopes`` may read; the others are left out, never an error."""
    wanted = asked if asked is not None else list(ChangeEntityType)
    return [str(t.value) for t in dict.fromkeys(wanted) if type_scopes(str(t.value)) <= scopes]
