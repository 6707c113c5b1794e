"""The root Mutation type, and the bulk ingest of KPI measurements.

Each mutation is a method of its area's class: ``schema/mutations/portfolio.py``
(create, update, archive, statuses), ``links.py``, ``upserts.py`` (upserts, external references), ``admin.py``, ``webhooks.py``; ``Mutation`` joins
them in the order of ``schema.graphql``."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from auth.scopes import Scope
from domain.services import corrections, measurements
from schema.atomic import report_parts
from schema.ids import encode_id
from schema.mutations import bulk, inputs
from schema.mutations.admin import AdminMutation
from schema.mutations.common import UserError, decode_reference, run, to_user_error
from schema.mutations.links import LinkMutation
from schema.mutations.portfolio import EntityMutation, StatusMutation
from schema.mutations.upserts import SyncMutation
from schema.mutations.webhooks import WebhookMutation
from schema.permissions import guarded
from schema.types.enums import MeasurementStatus


@strawberry.type(description="What a call did to one of its measurements.")
class MeasurementOutcome:
    index: int = strawberry.field(description="The measurement's position in the call.")
    status: MeasurementStatus = strawberry.field(description="What happened to it.")
    measurement_id: strawberry.ID | None = strawberry.field(
        description="The stored (or deleted) measurement's global ID; null when none."
    )


def _outcomes(found: list[measurements.ItemOutcome] | None) -> list[MeasurementOutcome] | None:
    if found is None:
        return None
    return [
        MeasurementOutcome(
            index=o.index,
            status=o.status,
            measurement_id=None
            if o.measurement_id is None
            else strawberry.ID(encode_id("KpiMeasurement", o.measurement_id)),
        )
        for o in found
    ]


@strawberry.type(description="The result of recording a batch of KPI measurements.")
class RecordKpiMeasurementsPayload:
    received: int = strawberry.field(description="Measurements in the call.")
    inserted: int = strawberry.field(description="New measurements stored.")
    duplicates: int = strawberry.field(
        description="Valid measurements already stored under the same (source, externalId)."
    )
    rejected: int = strawberry.field(description="Measurements refused; see userErrors.")
    corrected: int = strawberry.field(
        description="Stored measurements whose values were replaced (onConflict: CORRECT)."
    )
    outcomes: list[MeasurementOutcome] | None = strawberry.field(
        description="One per measurement, in the order sent, with onConflict CORRECT or "
        "REFUSE; null with IGNORE, whose fast path only counts."
    )
    user_errors: list[UserError] = strawberry.field(
        description="One entry per problem, with the index of the measurement in `field`."
    )


@strawberry.type(description="The result of deleting KPI measurements.")
class DeleteKpiMeasurementsPayload:
    deleted: int = strawberry.field(description="Measurements deleted.")
    outcomes: list[MeasurementOutcome] = strawberry.field(
        description="One per measurement named, in order: DELETED, or REFUSED (see userErrors)."
    )
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
        mode = corrections.MeasurementConflict(input.on_conflict.value)
        if mode is corrections.MeasurementConflict.IGNORE:
            outcome = await run(
                info, lambda session, actor: measurements.record(session, actor, items)
            )
        else:
            outcome = await run(
                info,
                lambda session, actor: corrections.record_resolving(session, actor, items, mode),
            )
        result = outcome.value or measurements.IngestResult(
            received=len(items), rejected=len(items)
        )
        return RecordKpiMeasurementsPayload(
            received=result.received,
            inserted=result.inserted,
            duplicates=result.duplicates,
            rejected=result.rejected,
            corrected=result.corrected,
            outcomes=_outcomes(result.outcomes),
            user_errors=outcome.errors + [to_user_error(e) for e in result.errors],
        )

    @strawberry.mutation(
        name="deleteKpiMeasurements",
        **guarded(
            "Delete up to 1,000 KPI measurements, each by ID or by (source, externalId). The "
            "audit trail keeps each one's values (a KpiMeasurement DELETE event). Those that "
            "match nothing are reported (NOT_FOUND) and the others deleted; a malformed item "
            "refuses the whole call.",
            Scope.KPIS_INGEST,
        ),
    )
    async def delete_kpi_measurements(
        self,
        info: strawberry.Info,
        input: Annotated[
            inputs.DeleteKpiMeasurementsInput, strawberry.argument(description="What to delete.")
        ],
    ) -> DeleteKpiMeasurementsPayload:
        given = input.measurements

        async def work(session: Any, actor: Any) -> corrections.DeleteResult:
            selectors = [
                corrections.MeasurementSelector(
                    measurement_id=None
                    if item.id is None
                    else decode_reference(item.id, "KpiMeasurement", f"measurements.{index}.id"),
                    source=item.source,
                    external_id=item.external_id,
                )
                for index, item in enumerate(given)
            ]
            return await corrections.delete(session, actor, selectors)

        outcome = await run(info, work)
        result = outcome.value
        if result is None:
            return DeleteKpiMeasurementsPayload(
                deleted=0,
                outcomes=[
                    MeasurementOutcome(
                        index=i, status=MeasurementStatus.REFUSED, measurement_id=None
                    )
                    for i in range(len(given))
                ],
                user_errors=outcome.errors,
            )
        return DeleteKpiMeasurementsPayload(
            deleted=result.deleted,
            outcomes=_outcomes(result.outcomes) or [],
            user_errors=[to_user_error(e) for e in result.errors],
        )


@strawberry.type(description="Changes to the portfolio graph. Each mutation is all or nothing.")
class Mutation(
    EntityMutation,
    LinkMutation,
    StatusMutation,
    SyncMutation,
    IngestMutation,
    AdminMutation,
    WebhookMutation,
):
    pass


report_parts(Mutation)  # each root field tells an ``@atomic`` operation how it went
