"""The root Subscription: changes to initiatives, constraints, KPIs, new measurements
and a product's whole neighbourhood, each event carrying the changed object read
afresh with the subscriber's scopes, through the same fields (and guards) as queries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any

import strawberry
import structlog

from auth.scopes import Scope
from domain import models
from domain.errors import NotFound
from domain.events import Change, DomainEvent, Entity, EntityChanged, LinkChanged
from schema.guards import NODE_TYPES, scopes_of
from schema.ids import encode_id
from schema.permissions import forbidden, guarded, require
from schema.subscriptions.context import SubscriptionContext
from schema.subscriptions.hub import Dropped
from schema.types.constraint import TechnicalConstraint
from schema.types.initiative import Initiative
from schema.types.kpi import Kpi, KpiMeasurement
from schema.types.node import Node
from schema.types.product import Product

log = structlog.get_logger(__name__)


@strawberry.enum(description="What happened to the object an event is about.")
class ChangeKind(Enum):
    CREATED = strawberry.enum_value("CREATED", description="It was created.")
    UPDATED = strawberry.enum_value("UPDATED", description="Its stored fields changed.")
    DELETED = strawberry.enum_value("DELETED", description="It was deleted: only its ID is left.")
    LINKED = strawberry.enum_value(
        "LINKED", description="It was linked to the object `linkedId` names."
    )
    UNLINKED = strawberry.enum_value(
        "UNLINKED", description="Its link to the object `linkedId` names was removed."
    )
    MEASURED = strawberry.enum_value(
        "MEASURED",
        description="A measurement of this KPI was recorded, changed or deleted: its latest "
        "value and status may have changed.",
    )


@dataclass(frozen=True)
class _Change:
    """One event as a subscriber sees it: what happened to which row, and for a link
    the row at the other end."""

    kind: ChangeKind
    entity: Entity
    pk: int
    linked: tuple[Entity, int] | None = None


def _focused(event: DomainEvent, focus: Entity | None) -> _Change | None:
    """``event`` told from the side of ``focus`` (a link from either of its ends); None
    if it is not about a ``focus`` row."""
    if isinstance(event, EntityChanged):
        if focus is Entity.KPI and event.entity is Entity.MEASUREMENT:
            assert event.kpi_id is not None
            return _Change(ChangeKind.MEASURED, Entity.KPI, event.kpi_id)
        if focus is None or event.entity is focus:
            return _Change(ChangeKind[event.change.value], event.entity, event.id)
        return None
    if isinstance(event, LinkChanged):
        first, second = event.ends
        if focus is None:
            # A product's neighbourhood: told from the product's side if it is an end.
            focus = Entity.PRODUCT if second[0] is Entity.PRODUCT else first[0]
        for end, other in ((first, second), (second, first)):
            if end[0] is focus:
                return _Change(ChangeKind[event.change.value], end[0], end[1], other)
    return None


async def _load(info: strawberry.Info, entity: Entity, pk: int) -> Any:
    model, scope = NODE_TYPES[entity.value]
    require(info.context, scope)
    return await info.context.by_id(model).load(pk)


def _global(entity: Entity, pk: int) -> strawberry.ID:
    return strawberry.ID(encode_id(entity.value, pk))


@strawberry.interface(
    name="ChangeEvent",
    description="What every change event has: what happened, to which object, and for a link "
    "the object at the other end.",
)
class ChangeEvent:
    _change: strawberry.Private[_Change]

    @strawberry.field(description="What happened.")
    def change(self) -> ChangeKind:
        return self._change.kind

    @strawberry.field(description="The global ID of the object this event is about.")
    def id(self) -> strawberry.ID:
        return _global(self._change.entity, self._change.pk)

    @strawberry.field(
        description="For LINKED and UNLINKED: the global ID of the object at the other end."
    )
    def linked_id(self) -> strawberry.ID | None:
        linked = self._change.linked
        return _global(*linked) if linked else None


@strawberry.type(description="An initiative changed, or was linked or unlinked.")
class InitiativeChange(ChangeEvent):
    @strawberry.field(
        **guarded("The initiative as it is now; null once deleted.", Scope.PORTFOLIO_READ)
    )
    async def initiative(self, info: strawberry.Info) -> Initiative | None:
        return await _load(info, Entity.INITIATIVE, self._change.pk)


@strawberry.type(description="A technical constraint changed, or was applied or lifted.")
class TechnicalConstraintChange(ChangeEvent):
    @strawberry.field(
        **guarded("The constraint as it is now; null once deleted.", Scope.PORTFOLIO_READ)
    )
    async def constraint(self, info: strawberry.Info) -> TechnicalConstraint | None:
        return await _load(info, Entity.CONSTRAINT, self._change.pk)


@strawberry.type(
    description="A KPI changed (its definition, a link, or a measurement: MEASURED), so its "
    "latest value and status may have moved."
)
class KpiChange(ChangeEvent):
    @strawberry.field(**guarded("The KPI as it is now; null once deleted.", Scope.PORTFOLIO_READ))
    async def kpi(self, info: strawberry.Info) -> Kpi | None:
        return await _load(info, Entity.KPI, self._change.pk)


@strawberry.type(
    description="Something in a product's neighbourhood changed: the product, one of its "
    "initiatives, a constraint applied to it or to one of its initiatives, one of its KPIs "
    "or their measurements, or a link between any of these."
)
class ProductChange(ChangeEvent):
    _product_id: strawberry.Private[int]

    @strawberry.field(
        description="The type of the object this event is about (a GraphQL type name)."
    )
    def typename(self) -> str:
        return self._change.entity.value

    @strawberry.field(
        **guarded("The product as it is now; null once deleted.", Scope.PORTFOLIO_READ)
    )
    async def product(self, info: strawberry.Info) -> Product | None:
        return await _load(info, Entity.PRODUCT, self._product_id)

    @strawberry.field(
        **guarded(
            "The object this event is about, as it is now; null once deleted.",
            Scope.PORTFOLIO_READ,
        )
    )
    async def node(self, info: strawberry.Info) -> Node | None:
        return await _load(info, self._change.entity, self._change.pk)


@strawberry.type(description="Measurements of one KPI were recorded.")
class KpiMeasurementsRecorded:
    _kpi_id: strawberry.Private[int]
    _ids: strawberry.Private[list[int]]

    @strawberry.field(description="The global ID of the KPI.")
    def kpi_id(self) -> strawberry.ID:
        return _global(Entity.KPI, self._kpi_id)

    @strawberry.field(**guarded("The KPI as it is now, its status included.", Scope.PORTFOLIO_READ))
    async def kpi(self, info: strawberry.Info) -> Kpi | None:
        return await _load(info, Entity.KPI, self._kpi_id)

    @strawberry.field(
        **guarded(
            "The measurements recorded (those still stored), in the order they were written.",
            Scope.PORTFOLIO_READ,
        )
    )
    async def measurements(self, info: strawberry.Info) -> list[KpiMeasurement]:
        require(info.context, Scope.PORTFOLIO_READ)
        found = await info.context.by_id(models.KpiMeasurement).load_many(self._ids)
        return [m for m in found if m is not None]


# --- what each subscription asks of the hub --------------------------------------


@dataclass(frozen=True)
class OfEntity:
    """Changes of rows of ``entity`` (of one row if ``pk``), and their links."""

    entity: Entity
    pk: int | None
    needs_products = False

    def matches(self, event: DomainEvent, products: frozenset[int]) -> bool:
        change = _focused(event, self.entity)
        return change is not None and (self.pk is None or change.pk == self.pk)


@dataclass(frozen=True)
class MeasurementsOf:
    """Measurements recorded (of one KPI if ``kpi_id``)."""

    kpi_id: int | None
    needs_products = False

    def matches(self, event: DomainEvent, products: frozenset[int]) -> bool:
        return (
            isinstance(event, EntityChanged)
            and event.entity is Entity.MEASUREMENT
            and event.change is Change.CREATED
            and (self.kpi_id is None or event.kpi_id == self.kpi_id)
        )


@dataclass(frozen=True)
class Neighbourhood:
    """Everything ``domain.events.products_concerned`` says concerns the product."""

    product_id: int
    needs_products = True

    def matches(self, event: DomainEvent, products: frozenset[int]) -> bool:
        return self.product_id in products


def _context(info: strawberry.Info) -> SubscriptionContext:
    context = info.context
    assert isinstance(context, SubscriptionContext)  # refused elsewhere (SubscriptionGate)
    return context


async def _batches(info: strawberry.Info, topic: Any) -> AsyncIterator[list[DomainEvent]]:
    """The events of each notification that ``topic`` asks for, until the subscriber is
    dropped (too slow) or the client completes the subscription. Each batch is handed
    out only while the caller (checked again whenever identity changes) still holds the
    scopes the subscription field declares: otherwise it ends with FORBIDDEN, and not
    even the IDs of what changed are sent."""
    context = _context(info)
    required = tuple(sorted(scopes_of(info._field)))
    assert context.hub is not None and context.caller is not None
    subscriber = context.hub.subscribe(topic, context.caller.key, context.on_overflow)
    log.info("subscription_started", topic=repr(topic), caller=context.caller.key)
    try:
        while True:
            try:
                batch = await subscriber.next()
            except Dropped:
                return
            context.principal = context.caller.principal
            if not context.principal.has(*required):
                raise forbidden(required)
            yield batch
    finally:
        context.hub.unsubscribe(subscriber)
        log.info("subscription_ended", topic=repr(topic), caller=context.caller.key)


async def _id_of(info: strawberry.Info, model: Any, key: str | None, what: str) -> int | None:
    """The id of the row with this key (None if no key); NOT_FOUND if there is none."""
    if key is None:
        return None
    context = _context(info)
    found = await context.by_key(model, model.key).load(key)
    await context.end_event()
    if found is None:
        raise NotFound(f"No {what} has the key `{key[:64]}`.", field="key")
    return int(found.id)


def _key_argument(what: str) -> Any:
    return strawberry.argument(description=f"Only changes of the {what} with this key.")


def _deduplicated(changes: list[_Change]) -> list[_Change]:
    """One event per object and kind in a notification (a batch of measurements of the
    same KPI is one MEASURED event)."""
    return list(dict.fromkeys(changes))


@strawberry.type(
    description="Changes pushed as they are committed, over WebSocket (graphql-transport-ws) "
    "at /graphql. Each event carries the object as it is when the event is sent, read with "
    "the subscriber's scopes."
)
class Subscription:
    @strawberry.subscription(
        **guarded(
            "Initiatives created, changed, deleted, linked or unlinked.", Scope.PORTFOLIO_READ
        )
    )
    async def initiative_changed(
        self,
        info: strawberry.Info,
        key: Annotated[str | None, _key_argument("initiative")] = None,
    ) -> AsyncGenerator[InitiativeChange, None]:
        pk = await _id_of(info, models.Initiative, key, "initiative")
        async for batch in _batches(info, OfEntity(Entity.INITIATIVE, pk)):
            changes = [_focused(e, Entity.INITIATIVE) for e in batch]
            for change in _deduplicated([c for c in changes if c is not None]):
                yield InitiativeChange(_change=change)

    @strawberry.subscription(
        **guarded(
            "Technical constraints created, changed (status included), deleted, applied or lifted.",
            Scope.PORTFOLIO_READ,
        )
    )
    async def constraint_changed(
        self,
        info: strawberry.Info,
        key: Annotated[str | None, _key_argument("constraint")] = None,
    ) -> AsyncGenerator[TechnicalConstraintChange, None]:
        pk = await _id_of(info, models.TechnicalConstraint, key, "constraint")
        async for batch in _batches(info, OfEntity(Entity.CONSTRAINT, pk)):
            changes = [_focused(e, Entity.CONSTRAINT) for e in batch]
            for change in _deduplicated([c for c in changes if c is not None]):
                yield TechnicalConstraintChange(_change=change)

    @strawberry.subscription(
        **guarded(
            "KPIs created, changed, deleted, linked or unlinked, and MEASURED when a "
            "measurement of theirs is recorded: watch `kpi { status }` for status changes.",
            Scope.PORTFOLIO_READ,
        )
    )
    async def kpi_changed(
        self,
        info: strawberry.Info,
        key: Annotated[str | None, _key_argument("KPI")] = None,
    ) -> AsyncGenerator[KpiChange, None]:
        pk = await _id_of(info, models.Kpi, key, "KPI")
        async for batch in _batches(info, OfEntity(Entity.KPI, pk)):
            changes = [_focused(e, Entity.KPI) for e in batch]
            for change in _deduplicated([c for c in changes if c is not None]):
                yield KpiChange(_change=change)

    @strawberry.subscription(
        **guarded(
            "New measurements, one event per KPI per batch written together.",
            Scope.PORTFOLIO_READ,
        )
    )
    async def measurements_recorded(
        self,
        info: strawberry.Info,
        kpi_key: Annotated[
            str | None, strawberry.argument(description="Only measurements of this KPI.")
        ] = None,
    ) -> AsyncGenerator[KpiMeasurementsRecorded, None]:
        pk = await _id_of(info, models.Kpi, kpi_key, "KPI")
        async for batch in _batches(info, MeasurementsOf(pk)):
            by_kpi: dict[int, list[int]] = defaultdict(list)
            for event in batch:
                assert isinstance(event, EntityChanged) and event.kpi_id is not None
                by_kpi[event.kpi_id].append(event.id)
            for kpi_id, ids in by_kpi.items():
                yield KpiMeasurementsRecorded(_kpi_id=kpi_id, _ids=ids)

    @strawberry.subscription(
        **guarded(
            "Every change in a product's neighbourhood (see ProductChange).",
            Scope.PORTFOLIO_READ,
        )
    )
    async def product_changed(
        self,
        info: strawberry.Info,
        key: Annotated[str, strawberry.argument(description="The product's key.")],
    ) -> AsyncGenerator[ProductChange, None]:
        pk = await _id_of(info, models.Product, key, "product")
        assert pk is not None
        async for batch in _batches(info, Neighbourhood(pk)):
            changes = [_focused(e, None) for e in batch]
            for change in _deduplicated([c for c in changes if c is not None]):
                yield ProductChange(_change=change, _product_id=pk)
