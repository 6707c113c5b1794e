"""Optimistic concurrency against the real database: concurrent requests on separate
connections and transactions, exactly as in production (no shared test transaction)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from domain import models
from domain.database import create_session_factory
from schema.ids import encode_id
from tests.conftest import ALL_SCOPES, GraphQL, make_client

UPDATE = """mutation($input: UpdateProductInput!) {
  updateProduct(input: $input) { product { name description version } userErrors { field code message } }
}"""


@pytest.fixture
async def committed_product(engine: AsyncEngine) -> AsyncIterator[models.Product]:
    """A product committed for real, removed (with its audit trail) afterwards."""
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        product = models.Product(
            key=f"CC{uuid.uuid4().hex[:8].upper()}",
            name="Original",
            lifecycle_stage=models.LifecycleStage.GROWTH,
        )
        session.add(product)
    yield product
    async with AsyncSession(engine) as session, session.begin():
        await session.execute(
            delete(models.AuditEvent).where(
                models.AuditEvent.entity_type == "Product",
                models.AuditEvent.entity_id == product.id,
            )
        )
        await session.execute(delete(models.Product).where(models.Product.id == product.id))


@pytest.fixture
async def api(engine: AsyncEngine) -> AsyncIterator[GraphQL]:
    """The app with its real session factory: one connection and transaction per request."""
    async with make_client(
        engine, create_session_factory(engine), anonymous_scopes=ALL_SCOPES
    ) as client:
        yield GraphQL(client)


async def _update(api: GraphQL, product: models.Product, **fields: Any) -> dict[str, Any]:
    variables = {"input": {"id": encode_id("Product", product.id), **fields}}
    return (await api.data(UPDATE, variables))["updateProduct"]


async def _stored(engine: AsyncEngine, product: models.Product) -> tuple[models.Product, int]:
    async with AsyncSession(engine) as session:
        stored = await session.get_one(models.Product, product.id)
        events = await session.scalar(
            select(func.count()).where(
                models.AuditEvent.entity_type == "Product",
                models.AuditEvent.entity_id == product.id,
                models.AuditEvent.action == models.AuditAction.UPDATE,
            )
        )
    return stored, events or 0


async def test_two_updates_of_the_same_version_exactly_one_wins(
    api: GraphQL, engine: AsyncEngine, committed_product: models.Product
) -> None:
    results = await asyncio.gather(
        _update(api, committed_product, expectedVersion=1, name="From Alice"),
        _update(api, committed_product, expectedVersion=1, name="From Bob"),
    )
    winners = [r for r in results if not r["userErrors"]]
    losers = [r for r in results if r["userErrors"]]
    assert len(winners) == 1 and len(losers) == 1
    winner = winners[0]["product"]
    assert winner["version"] == 2
    [conflict] = losers[0]["userErrors"]
    assert conflict["code"] == "CONFLICT"
    assert conflict["field"] == "expectedVersion"
    assert conflict["message"] == (
        f"Product {committed_product.key} is at version 2, not 1: it changed since you read it."
    )
    # The loser sees the stored state, so it can merge and retry.
    assert losers[0]["product"] == winner

    stored, update_events = await _stored(engine, committed_product)
    assert (stored.name, stored.version) == (winner["name"], 2)
    assert update_events == 1


async def test_updates_without_expected_version_are_serialised_not_lost(
    api: GraphQL, engine: AsyncEngine, committed_product: models.Product
) -> None:
    await asyncio.gather(
        _update(api, committed_product, name="New name"),
        _update(api, committed_product, description="New description"),
    )
    stored, update_events = await _stored(engine, committed_product)
    assert (stored.name, stored.description, stored.version) == (
        "New name",
        "New description",
        3,
    )
    assert update_events == 2
