"""Registering webhook endpoints, rotating their secrets, enabling them again and
redelivering: the rules the GraphQL admin fields and the CLI share. Each runs in the
caller's transaction. Secrets are stored sealed (``domain.webhooks.secrets``) and
returned in clear only by the call that made them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import InvalidInput, NotFound
from domain.models.enums import AuditAction
from domain.models.records import AuditEvent
from domain.models.webhooks import WebhookDelivery, WebhookEndpoint
from domain.services.audit import to_json
from domain.settings import Settings
from domain.webhooks.events import EVENT_TYPES
from domain.webhooks.secrets import SecretBox
from domain.webhooks.signing import new_secret
from domain.webhooks.targets import check_url

MAX_URL_CHARS = 2048


def _event_types(event_types: Sequence[str]) -> list[str]:
    unknown = sorted(set(event_types) - EVENT_TYPES)
    if unknown:
        raise InvalidInput(
            f"Unknown event type `{unknown[0][:64]}`; known: {', '.join(sorted(EVENT_TYPES))}.",
            field="eventTypes",
        )
    if not event_types:
        raise InvalidInput("A webhook needs at least one event type.", field="eventTypes")
    return sorted(set(event_types))


async def create_endpoint(
    session: AsyncSession,
    settings: Settings,
    *,
    url: str,
    event_types: Sequence[str],
    owner_user_id: int | None = None,
    owner_client_id: int | None = None,
    query: str | None = None,
) -> tuple[WebhookEndpoint, str]:
    """The new endpoint and its secret, which is shown only now. ``query``, a GraphQL
    document checked by the caller (the schema is a floor above), chooses the body."""
    if len(url) > MAX_URL_CHARS:
        raise InvalidInput(f"A webhook URL has at most {MAX_URL_CHARS} characters.", field="url")
    check_url(url, settings)
    if (owner_user_id is None) == (owner_client_id is None):
        raise InvalidInput("A webhook is owned by one user or one client.", field="owner")
    events = _event_types(event_types)
    secret = new_secret()
    endpoint = WebhookEndpoint(
        url=url,
        event_types=events,
        secret=SecretBox(settings).seal(secret),
        owner_user_id=owner_user_id,
        owner_client_id=owner_client_id,
        query=query,
    )
    session.add(endpoint)
    await session.flush()
    return endpoint, secret


async def _endpoint(session: AsyncSession, endpoint_id: int) -> WebhookEndpoint:
    endpoint = await session.get(WebhookEndpoint, endpoint_id, with_for_update=True)
    if endpoint is None:
        raise NotFound("No such webhook.", field="id")
    return endpoint


async def rotate_secret(session: AsyncSession, settings: Settings, endpoint_id: int) -> str:
    """A new secret, shown only now; the old one keeps signing beside it for
    ``webhook_secret_overlap_seconds``."""
    endpoint = await _endpoint(session, endpoint_id)
    overlap = settings.webhook_secret_overlap_seconds
    endpoint.previous_secret = endpoint.secret if overlap else None
    endpoint.previous_secret_expires_at = (
        func.now() + timedelta(seconds=overlap) if overlap else None
    )
    secret = new_secret()
    endpoint.secret = SecretBox(settings).seal(secret)
    await session.flush()
    return secret


async def delete_endpoint(session: AsyncSession, endpoint_id: int) -> None:
    """The endpoint and its pending deliveries and log go."""
    await session.delete(await _endpoint(session, endpoint_id))
    await session.flush()


async def enable_endpoint(
    session: AsyncSession,
    endpoint_id: int,
    *,
    actor_user_id: int | None = None,
    actor_client_id: int | None = None,
) -> WebhookEndpoint:
    """Send to the endpoint again, its failure count reset; what waited while it was
    disabled is sent too. An endpoint already active is left as it is."""
    endpoint = await _endpoint(session, endpoint_id)
    if not endpoint.is_active:
        # What enabling resets, as admin:webhooks callers read it in the audit trail.
        changes = {
            "is_active": {"before": False, "after": True},
            "consecutive_failures": {"before": endpoint.consecutive_failures, "after": 0},
            "disabled_at": {"before": to_json(endpoint.disabled_at), "after": None},
        }
        endpoint.is_active, endpoint.consecutive_failures, endpoint.disabled_at = True, 0, None
        session.add(
            AuditEvent(
                actor_user_id=actor_user_id,
                actor_client_id=actor_client_id,
                entity_type="Webhook",
                entity_id=endpoint_id,
                action=AuditAction.UPDATE,
                changes=changes,
            )
        )
    await session.flush()
    await session.refresh(endpoint)
    return endpoint


async def reseal_secrets(session: AsyncSession, settings: Settings) -> int:
    """Seal every stored secret under the current key (after the key changed, or once a
    key is set where secrets were kept in clear); the number of endpoints changed."""
    box = SecretBox(settings)
    changed = 0
    for endpoint in (
        await session.scalars(
            select(WebhookEndpoint).order_by(WebhookEndpoint.id).with_for_update()
        )
    ).all():
        stale = [
            name
            for name in ("secret", "previous_secret")
            if getattr(endpoint, name) is not None and not box.is_current(getattr(endpoint, name))
        ]
        for name in stale:
            setattr(endpoint, name, box.seal(box.open(getattr(endpoint, name))))
        changed += bool(stale)
    await session.flush()
    return changed


async def redeliver(session: AsyncSession, delivery_id: int) -> WebhookDelivery:
    """Send a delivery again, now, under its own ``webhook-id`` (the same event)."""
    found = (
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(status="pending", attempts=0, next_attempt_at=func.now(), delivered_at=None)
            .returning(WebhookDelivery)
        )
    ).scalar_one_or_none()
    if found is None:
        raise NotFound("No such webhook delivery.", field="id")
    return found


async def deliveries(session: AsyncSession, endpoint_id: int) -> Sequence[WebhookDelivery]:
    return (
        await session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .order_by(WebhookDelivery.id)
        )
    ).all()


async def every_endpoint(session: AsyncSession) -> Sequence[WebhookEndpoint]:
    return (await session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id))).all()
