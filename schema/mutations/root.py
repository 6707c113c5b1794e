"""The root Mutation type, and the bulk ingest of KPI measurements.

Each mutation is a method of its area's class: ``schema/mutations/portfolio.py``
(create, update, archive, statuses), ``links.py``, ``admin.py``, ``webhooks.py``; ``Mutation`` joins
them in the order of ``schema.graphql``."""

from __future__ import annotations

from typing import Annotated

import strawberry

from auth.scopes import Scope
from domain.services import measurements
from schema.atomic import report_parts
from schema.mutations import bulk, inputs
from schema.mutations.admin import AdminMutation
from schema.mutations.common import UserError, run, to_user_error
from schema.mutations.links import LinkMutation
from schema.mutations.portfolio import EntityMutation, StatusMutation
from schema.mutations.webhooks import WebhookMutation
from schema.permissions import guarded


@strawberry.type(description="The result of recording a batch of KPI measurements.")
class RecordKpiMeasurementsPayload:
    received: int = strawberry.field(description="Measurements in the call.")
    inserted: int = strawberry.field(description="New measurements stored.")
    duplicates: int = strawberry.field(
        description="Valid measurements already stored under the same (source, externalId)."
    )
    rejected: int = strawberry.field(description="Measurements refused; see userErrors.")
    user_errors: list[UserError] = strawberry.field(
        description="One entry per problem, with the index of the measurement in `field`."
    )


@strawberry.type(description="KPI measurements sent by monitoring pipelines.")
class IngestMutation:
    @strawberry.mutation(
        name="recordKpiMeasurements",
        **guarded(
            "Record up to 10,000 KPI measurements at once. Idempotent by (source, externalId): "
            "re-sending is counted as a duplicate, never stored twice. Invalid items are reported "
            "in userErrors; the valid ones are stored.",
            Scope.KPIS_INGEST,
        ),
    )
    async def record_kpi_measurements(
        self,
        info: strawberry.Info,
        input: Annotated[
            inputs.RecordKpiMeasurementsInput, strawberry.argument(description="The batch.")
        ],
    ) -> RecordKpiMeasurementsPayload | None:
        # Already a column batch when BulkIngest prevalidated it (the common case).
        items = bulk.measurements_of(info, input.measurements)
        outcome = await run(info, lambda session, actor: measurements.record(session, actor, items))
        result = outcome.value or measurements.IngestResult(
            received=len(items), rejected=len(items)
        )
        return RecordKpiMeasurementsPayload(
            received=result.received,
            inserted=result.inserted,
            duplicates=result.duplicates,
            rejected=result.rejected,
            user_errors=outcome.errors + [to_user_error(e) for e in result.errors],
        )


@strawberry.type(description="Changes to the portfolio graph. Each mutation is all or nothing.")
class Mutation(
    EntityMutation, LinkMutation, StatusMutation, IngestMutation, AdminMutation, WebhookMutation
):
    pass


report_parts(Mutation)  # each root field tells an ``@atomic`` operation how it went
