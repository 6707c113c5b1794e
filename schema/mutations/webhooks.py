"""Administration of webhooks (admin:webhooks): register, delete, rotate a secret,
enable again after it was disabled, redeliver. The rules are in ``domain.webhooks.endpoints``."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from auth.scopes import Scope
from domain.errors import InvalidInput
from domain.models.webhooks import WebhookDelivery as DeliveryRow
from domain.services.writes import Actor
from domain.webhooks import endpoints
from schema.mutations.common import WHAT_TO_DO, UserError, decode_reference, run
from schema.mutations.inputs import given, required
from schema.mutations.payloads import ERRORS
from schema.permissions import guarded
from schema.types.webhook import Webhook, WebhookDelivery, deliveries_where, webhook_of
from schema.webhook_documents import check_document

WEBHOOKS = Scope.ADMIN_WEBHOOKS


@strawberry.type(description="Result of a mutation of a webhook.")
class WebhookPayload:
    webhook: Webhook | None = strawberry.field(
        default=None, description="The webhook after the change; null when refused or deleted."
    )
    secret: str | None = strawberry.field(
        default=None,
        description="The signing secret (`whsec_…`), shown only in this response: store it now.",
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list, description=ERRORS)


@strawberry.type(description="Result of redelivering a webhook delivery.")
class WebhookDeliveryPayload:
    delivery: WebhookDelivery | None = strawberry.field(
        default=None, description="The delivery, pending again; null when refused."
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list, description=ERRORS)


@strawberry.input(description="Register a webhook, owned by the caller.")
class CreateWebhookInput:
    url: str = required("Where to POST (https in production, to a public address).")
    event_types: list[str] = required(
        "Events to receive: `{product,initiative,constraint,kpi,measurement}."
        "{created,updated,deleted}`, and `webhook.disabled` (another webhook was disabled "
        "after repeated failures)."
    )
    query: str | None = given(
        "A GraphQL query taking `$id: ID!` (the changed row's global ID): its answer, "
        "resolved with your scopes, is the body's `data`. Left out: the row's type and ID.",
        None,
    )


@strawberry.input(description="A webhook.")
class WebhookInput:
    id: strawberry.ID = required("The webhook.")


@strawberry.input(description="A delivery to send again.")
class RedeliverWebhookInput:
    id: strawberry.ID = required("The delivery (`WebhookDelivery.id`).")


def _owner(actor: Actor) -> dict[str, int | None]:
    if actor.user_id is None and actor.client_id is None:
        raise InvalidInput("A webhook is owned by a signed-in user or client.", field=None)
    if actor.user_id is not None:
        return {"owner_user_id": actor.user_id}
    return {"owner_client_id": actor.client_id}


@strawberry.type(description="Administration of webhooks.")
class WebhookMutation:
    @strawberry.mutation(
        name="createWebhook",
        **guarded("Register a webhook; its secret is in the payload, once.", WEBHOOKS),
    )
    async def create_webhook(
        self, info: strawberry.Info, input: Annotated[CreateWebhookInput, WHAT_TO_DO]
    ) -> WebhookPayload | None:
        settings = info.context.settings

        async def create(session: AsyncSession, actor: Actor) -> tuple[Any, str]:
            if input.query is not None:
                check_document(info.schema._schema, input.query)
            return await endpoints.create_endpoint(
                session,
                settings,
                url=input.url,
                event_types=input.event_types,
                query=input.query,
                **_owner(actor),
            )

        outcome = await run(info, create)
        if outcome.value is None:
            return WebhookPayload(user_errors=outcome.errors)
        endpoint, secret = outcome.value
        return WebhookPayload(webhook=webhook_of(endpoint), secret=secret)

    @strawberry.mutation(
        name="deleteWebhook",
        **guarded("Delete a webhook with its pending deliveries and log.", WEBHOOKS),
    )
    async def delete_webhook(
        self, info: strawberry.Info, input: Annotated[WebhookInput, WHAT_TO_DO]
    ) -> WebhookPayload | None:
        outcome = await run(
            info,
            lambda session, _: endpoints.delete_endpoint(
                session, decode_reference(input.id, "Webhook", "id")
            ),
        )
        return WebhookPayload(user_errors=outcome.errors)

    @strawberry.mutation(
        name="rotateWebhookSecret",
        **guarded(
            "Give a webhook a new secret (in the payload, once); the old one keeps signing beside "
            "it for PORTFOLIO_WEBHOOK_SECRET_OVERLAP_SECONDS.",
            WEBHOOKS,
        ),
    )
    async def rotate_webhook_secret(
        self, info: strawberry.Info, input: Annotated[WebhookInput, WHAT_TO_DO]
    ) -> WebhookPayload | None:
        outcome = await run(
            info,
            lambda session, _: endpoints.rotate_secret(
                session, info.context.settings, decode_reference(input.id, "Webhook", "id")
            ),
        )
        return WebhookPayload(secret=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(
        name="enableWebhook",
        **guarded(
            "Send to a webhook again after it was disabled for repeated failures: its failure "
            "count restarts at 0 and the deliveries that waited are sent. The audit trail "
            "records who did it.",
            WEBHOOKS,
        ),
    )
    async def enable_webhook(
        self, info: strawberry.Info, input: Annotated[WebhookInput, WHAT_TO_DO]
    ) -> WebhookPayload | None:
        outcome = await run(
            info,
            lambda session, actor: endpoints.enable_endpoint(
                session,
                decode_reference(input.id, "Webhook", "id"),
                actor_user_id=actor.user_id,
                actor_client_id=actor.client_id,
            ),
        )
        if outcome.value is None:
            return WebhookPayload(user_errors=outcome.errors)
        return WebhookPayload(webhook=webhook_of(outcome.value))

    @strawberry.mutation(
        name="redeliverWebhook",
        **guarded("Send a delivery again, now, under the same `webhook-id`.", WEBHOOKS),
    )
    async def redeliver_webhook(
        self, info: strawberry.Info, input: Annotated[RedeliverWebhookInput, WHAT_TO_DO]
    ) -> WebhookDeliveryPayload | None:

        async def redeliver(session: AsyncSession, _: Actor) -> WebhookDelivery:
            row = await endpoints.redeliver(
                session, decode_reference(input.id, "WebhookDelivery", "id")
            )
            [delivery] = await deliveries_where(session, DeliveryRow.id == row.id, 1)
            return delivery

        outcome = await run(info, redeliver)
        return WebhookDeliveryPayload(delivery=outcome.value, user_errors=outcome.errors)
