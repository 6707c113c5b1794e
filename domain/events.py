"""What changed, in the domain's words: the change notifications (``domain.changes``,
migrations 0006/0008) turned into typed events. Subscriptions read them today; webhooks
and any other listener should start from ``events_from_notification`` too, so that all
of them agree on what a notification means.

A notification carries ids only, never data (migration 0008): a listener reads the
rows it may show, with the scopes of whoever it shows them to. It is sent when the
writing transaction commits, by whichever process wrote (any replica, the CLI, psql).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson


class Entity(StrEnum):
    """The kinds of rows whose changes are told by id (the GraphQL type names)."""

    PRODUCT = "Product"
    INITIATIVE = "Initiative"
    CONSTRAINT = "TechnicalConstraint"
    KPI = "Kpi"
    MEASUREMENT = "KpiMeasurement"


class Change(StrEnum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"
    LINKED = "LINKED"
    UNLINKED = "UNLINKED"


@dataclass(frozen=True)
class EntityChanged:
    """A row of ``entity`` was created, updated or deleted. ``kpi_id`` is a
    measurement's KPI (None for other entities)."""

    entity: Entity
    change: Change
    id: int
    kpi_id: int | None = None

    def touches(self, entity: Entity, id: int) -> bool:
        return (self.entity is entity and self.id == id) or (
            entity is Entity.KPI and self.kpi_id == id
        )


@dataclass(frozen=True)
class LinkChanged:
    """Two rows were linked or unlinked (``link`` is the link table), e.g. a constraint
    applied to a product. ``ends`` names both rows."""

    link: str
    change: Change
    ends: tuple[tuple[Entity, int], tuple[Entity, int]]

    def touches(self, entity: Entity, id: int) -> bool:
        return (entity, id) in self.ends


@dataclass(frozen=True)
class TableChanged:
    """Something in ``table`` changed and the notification names no rows: a TRUNCATE,
    or a table whose changes carry no ids (identity, glossary, audit)."""

    table: str

    def touches(self, entity: Entity, id: int) -> bool:
        return False


DomainEvent = EntityChanged | LinkChanged | TableChanged

# Migration 0008's tables: what each row of its payload holds, in order.
_ENTITY_TABLES: dict[str, Entity] = {
    "products": Entity.PRODUCT,
    "initiatives": Entity.INITIATIVE,
    "technical_constraints": Entity.CONSTRAINT,
    "kpis": Entity.KPI,
    "kpi_measurements": Entity.MEASUREMENT,  # (id, kpi_id)
}
_LINK_TABLES: dict[str, tuple[Entity, Entity]] = {
    "initiative_products": (Entity.INITIATIVE, Entity.PRODUCT),
    "constraint_products": (Entity.CONSTRAINT, Entity.PRODUCT),
    "constraint_initiatives": (Entity.CONSTRAINT, Entity.INITIATIVE),
    "initiative_kpis": (Entity.INITIATIVE, Entity.KPI),
}
_ROW_CHANGES = {"INSERT": Change.CREATED, "UPDATE": Change.UPDATED, "DELETE": Change.DELETED}
_LINK_CHANGES = {"INSERT": Change.LINKED, "UPDATE": Change.LINKED, "DELETE": Change.UNLINKED}


def events_from_notification(payload: str) -> list[DomainEvent]:
    """The events one ``portfolio_changes`` notification tells of, in its rows' order.
    A payload this code does not know (a table's bare name, a future format) becomes a
    ``TableChanged``: something changed, nobody knows what."""
    if not payload.startswith("{"):
        return [TableChanged(payload)]
    try:
        message: Any = orjson.loads(payload)
        table, operation, rows = message["table"], message["op"], message["rows"]
        if table in _ENTITY_TABLES:
            entity = _ENTITY_TABLES[table]
            change = _ROW_CHANGES[operation]
            return [
                EntityChanged(entity, change, int(row[0]), int(row[1]) if len(row) > 1 else None)
                for row in rows
            ]
        if table in _LINK_TABLES:
            first, second = _LINK_TABLES[table]
            change = _LINK_CHANGES[operation]
            return [
                LinkChanged(table, change, ((first, int(row[0])), (second, int(row[1]))))
                for row in rows
            ]
        return [TableChanged(str(table))]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError):
        return [TableChanged("?")]


# Which products an event concerns (a product's "neighbourhood": the product, its
# initiatives, the constraints applied to it or to its initiatives, its KPIs and their
# measurements, and every link to any of these). One statement per kind of event.
_PRODUCTS_OF: dict[Entity, str] = {
    Entity.PRODUCT: "SELECT id, id FROM products WHERE id = ANY($1::bigint[])",
    Entity.INITIATIVE: (
        "SELECT initiative_id, product_id FROM initiative_products"
        " WHERE initiative_id = ANY($1::bigint[])"
    ),
    Entity.CONSTRAINT: (
        "SELECT constraint_id, product_id FROM constraint_products"
        " WHERE constraint_id = ANY($1::bigint[])"
        " UNION SELECT ci.constraint_id, ip.product_id FROM constraint_initiatives ci"
        " JOIN initiative_products ip ON ip.initiative_id = ci.initiative_id"
        " WHERE ci.constraint_id = ANY($1::bigint[])"
    ),
    Entity.KPI: (
        "SELECT id, product_id FROM kpis WHERE id = ANY($1::bigint[]) AND product_id IS NOT NULL"
    ),
}


def _anchors(event: DomainEvent) -> Iterable[tuple[Entity, int]]:
    """The rows whose products an event concerns (a deleted row is looked up too: a
    product of its own is still known when it is the product)."""
    if isinstance(event, EntityChanged):
        if event.entity is Entity.MEASUREMENT:
            if event.kpi_id is not None:
                yield Entity.KPI, event.kpi_id
        else:
            yield event.entity, event.id
    elif isinstance(event, LinkChanged):
        yield from event.ends


async def products_concerned(
    connection: Any, events: Sequence[DomainEvent]
) -> dict[DomainEvent, frozenset[int]]:
    """The ids of the products each event concerns, read on ``connection`` (asyncpg's
    interface): a statement per kind of row named, none when the events name none."""
    wanted: dict[Entity, set[int]] = defaultdict(set)
    for event in events:
        for entity, id in _anchors(event):
            if entity is Entity.PRODUCT:
                continue  # needs no lookup
            wanted[entity].add(id)
    found: dict[tuple[Entity, int], set[int]] = defaultdict(set)
    for entity, ids in wanted.items():
        for row in await connection.fetch(_PRODUCTS_OF[entity], sorted(ids)):
            found[(entity, row[0])].add(row[1])
    answer: dict[DomainEvent, frozenset[int]] = {}
    for event in events:
        products: set[int] = set()
        for entity, id in _anchors(event):
            if entity is Entity.PRODUCT:
                products.add(id)
            else:
                products |= found.get((entity, id), set())
        answer[event] = frozenset(products)
    return answer
