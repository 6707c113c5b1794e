"""Mutations for sync jobs: upsert each entity by key or external reference, one or a
batch (``domain.services.sync``), and set or remove one external reference."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from auth.scopes import Scope
from domain import models
from domain.errors import DomainError
from domain.models.kpi import DEFAULT_EXPECTED_INTERVAL_SECONDS
from domain.services import specs, sync
from domain.services.external_refs import RefIn
from domain.services.writes import Actor, EntitySpec, Refused
from domain.services.writes import UserError as ServiceError
from schema.mutations import inputs
from schema.mutations.common import (
    WHAT_TO_DO,
    UserError,
    given_values,
    refs_given,
    run,
    target_id,
    to_user_error,
)
from schema.mutations.payloads import (
    ERRORS,
    InitiativePayload,
    KpiPayload,
    ProductPayload,
    TechnicalConstraintPayload,
    entity_description,
    entity_guard,
)
from schema.mutations.portfolio import LOOKUPS
from schema.permissions import guarded
from schema.types.constraint import TechnicalConstraint
from schema.types.initiative import Initiative
from schema.types.kpi import Kpi
from schema.types.product import Product

# Values a creation takes when the input leaves them out (as the create inputs' defaults).
DEFAULTS: dict[str, dict[str, Any]] = {
    "Initiative": {"status": models.InitiativeStatus.PROPOSED},
    "TechnicalConstraint": {"status": models.ConstraintStatus.OPEN},
    "Kpi": {"expected_interval_seconds": DEFAULT_EXPECTED_INTERVAL_SECONDS},
}


@strawberry.enum(description="What an upsert did.")
class UpsertOutcome(Enum):
    CREATED = strawberry.enum_value("CREATED", description="Nothing matched: it was created.")
    UPDATED = strawberry.enum_value("UPDATED", description="It existed and was changed.")
    UNCHANGED = strawberry.enum_value(
        "UNCHANGED", description="It existed as given: no new version, no audit event."
    )


OUTCOME = "What happened; null when refused."
CREATED = "True when it was created (outcome CREATED)."


@strawberry.type(description="The result of upserting a product.")
class UpsertProductPayload:
    product: Product | None = strawberry.field(
        description=entity_description("The product; null when refused."), extensions=entity_guard()
    )
    outcome: UpsertOutcome | None = strawberry.field(description=OUTCOME)
    created: bool = strawberry.field(description=CREATED)
    user_errors: list[UserError] = strawberry.field(description=ERRORS)


@strawberry.type(description="The result of upserting an initiative.")
class UpsertInitiativePayload:
    initiative: Initiative | None = strawberry.field(
        description=entity_description(
            "The initiative; on CONFLICT as stored; else null when refused."
        ),
        extensions=entity_guard(),
    )
    outcome: UpsertOutcome | None = strawberry.field(description=OUTCOME)
    created: bool = strawberry.field(description=CREATED)
    user_errors: list[UserError] = strawberry.field(description=ERRORS)


@strawberry.type(description="The result of upserting a technical constraint.")
class UpsertTechnicalConstraintPayload:
    technical_constraint: TechnicalConstraint | None = strawberry.field(
        description=entity_description(
            "The constraint; on CONFLICT as stored; else null when refused."
        ),
        extensions=entity_guard(),
    )
    outcome: UpsertOutcome | None = strawberry.field(description=OUTCOME)
    created: bool = strawberry.field(description=CREATED)
    user_errors: list[UserError] = strawberry.field(description=ERRORS)


@strawberry.type(description="The result of upserting a KPI.")
class UpsertKpiPayload:
    kpi: Kpi | None = strawberry.field(
        description=entity_description("The KPI; on CONFLICT as stored; else null when refused."),
        extensions=entity_guard(),
    )
    outcome: UpsertOutcome | None = strawberry.field(description=OUTCOME)
    created: bool = strawberry.field(description=CREATED)
    user_errors: list[UserError] = strawberry.field(description=ERRORS)


COUNTS = "Items"
RESULTS = "One per item, in the order sent: null where the item was refused."
BATCH_ERRORS = "One entry per problem, with the item's index in `field` (`items.3.key`)."


def _batch_payload(name: str, item_type: Any, entity: str) -> Any:
    """A batch's payload type: counts, results in order, errors by index."""
    namespace = {
        "__annotations__": {
            "results": list[item_type | None],
            "created": int,
            "updated": int,
            "unchanged": int,
            "rejected": int,
            "user_errors": list[UserError],
        },
        "results": strawberry.field(description=RESULTS),
        "created": strawberry.field(description=f"{entity}s created."),
        "updated": strawberry.field(description=f"{entity}s changed."),
        "unchanged": strawberry.field(description=f"{entity}s already as given."),
        "rejected": strawberry.field(description="Items refused; see userErrors."),
        "user_errors": strawberry.field(description=BATCH_ERRORS),
    }
    return strawberry.type(
        type(name, (), namespace),
        description=f"The result of a batch of {entity} upserts: the valid items are written.",
    )


UpsertProductsPayload = _batch_payload("UpsertProductsPayload", UpsertProductPayload, "Product")
UpsertInitiativesPayload = _batch_payload(
    "UpsertInitiativesPayload", UpsertInitiativePayload, "Initiative"
)
UpsertTechnicalConstraintsPayload = _batch_payload(
    "UpsertTechnicalConstraintsPayload", UpsertTechnicalConstraintPayload, "TechnicalConstraint"
)
UpsertKpisPayload = _batch_payload("UpsertKpisPayload", UpsertKpiPayload, "Kpi")


def upsert_item(data: Any, spec: EntitySpec) -> sync.UpsertItem:
    """An upsert input as the service takes it (its lookups resolved by the service)."""
    match = None if data.match is None else RefIn(data.match.system, data.match.external_id)
    return sync.UpsertItem(
        key=data.key,
        values=given_values(data, {}, LOOKUPS.get(spec.name)),
        refs=refs_given(data),
        match=match,
        expected_version=data.expected_version,
        defaults=DEFAULTS.get(spec.name, {}),
    )


def batch_items(given: list[Any], spec: EntitySpec) -> list[sync.UpsertItem | sync.Rejected]:
    """Each item converted, or rejected on its own when it cannot be (a bad global ID)."""
    items: list[sync.UpsertItem | sync.Rejected] = []
    for data in given:
        try:
            items.append(upsert_item(data, spec))
        except Refused as refused:
            items.append(sync.Rejected(refused.errors))
        except DomainError as error:
            items.append(sync.Rejected([ServiceError(error.field, error.code, error.message)]))
    return items


def _one(outcome: Any, field: str, payload: Any) -> Any:
    entity, done = outcome.value if isinstance(outcome.value, tuple) else (outcome.value, None)
    return payload(
        **{field: entity},
        outcome=None if done is None else UpsertOutcome(done.value),
        created=done is sync.Outcome.CREATED,
        user_errors=outcome.errors,
    )


def _many(outcome: Any, field: str, payload: Any, item_payload: Any, sent: int) -> Any:
    result: sync.BatchResult = outcome.value or sync.BatchResult()
    results = [
        None
        if found is None
        else item_payload(
            **{field: found[0]},
            outcome=UpsertOutcome(found[1].value),
            created=found[1] is sync.Outcome.CREATED,
            user_errors=[],
        )
        for found in result.results
    ]
    done = [found[1] for found in result.results if found is not None]
    return payload(
        results=results,
        created=done.count(sync.Outcome.CREATED),
        updated=done.count(sync.Outcome.UPDATED),
        unchanged=done.count(sync.Outcome.UNCHANGED),
        rejected=sent - len(done),
        user_errors=outcome.errors + [to_user_error(e) for e in result.errors],
    )


UPSERT = (
    "Create the {0}, or change the one it names: by `match` (an external reference) if "
    "given, else by `key`. Idempotent: sending the same input again is UNCHANGED (no new "
    "version). Pass `expectedVersion` to be refused (CONFLICT) instead of overwriting a change."
)
UPSERT_MANY = (
    "Upsert up to 500 {0}s in one transaction, each as `upsert{1}` would; the valid items are "
    "written, the others reported in userErrors by index."
)


async def set_ref(session: AsyncSession, actor: Actor, spec: EntitySpec, data: Any) -> Any:
    pk = await target_id(session, data, spec.name)
    ref = RefIn(data.ref.system, data.ref.external_id, data.ref.url)
    return await sync.update(session, actor, spec, pk, data.expected_version, {}, [ref])


async def remove_ref(session: AsyncSession, actor: Actor, spec: EntitySpec, data: Any) -> Any:
    pk = await target_id(session, data, spec.name)
    return await sync.update(
        session, actor, spec, pk, data.expected_version, {}, removed=[data.system]
    )


def setting_ref(type_name: str) -> str:
    return (
        f"Set a {type_name}'s reference in one system (replacing that system's). A new version, "
        "recorded in its history; setting what it already has changes nothing."
    )


def removing_ref(type_name: str) -> str:
    return (
        f"Remove a {type_name}'s reference in one system. Removing one it does not have "
        "changes nothing."
    )


@strawberry.type(description="Upserts and external references, for sync jobs.")
class SyncMutation:
    @strawberry.mutation(
        name="upsertProduct", **guarded(UPSERT.format("product"), Scope.PRODUCTS_WRITE)
    )
    async def upsert_product(
        self, info: strawberry.Info, input: Annotated[inputs.UpsertProductInput, WHAT_TO_DO]
    ) -> UpsertProductPayload | None:
        outcome = await run(
            info,
            lambda session, actor: sync.upsert(
                session, actor, specs.PRODUCT, upsert_item(input, specs.PRODUCT)
            ),
        )
        return _one(outcome, "product", UpsertProductPayload)

    @strawberry.mutation(
        name="upsertProducts",
        **guarded(UPSERT_MANY.format("product", "Product"), Scope.PRODUCTS_WRITE),
    )
    async def upsert_products(
        self, info: strawberry.Info, input: Annotated[inputs.UpsertProductsInput, WHAT_TO_DO]
    ) -> UpsertProductsPayload | None:  # type: ignore[valid-type]
        outcome = await run(
            info,
            lambda session, actor: sync.upsert_many(
                session, actor, specs.PRODUCT, batch_items(input.items, specs.PRODUCT)
            ),
        )
        return _many(
            outcome, "product", UpsertProductsPayload, UpsertProductPayload, len(input.items)
        )

    @strawberry.mutation(
        name="upsertInitiative", **guarded(UPSERT.format("initiative"), Scope.INITIATIVES_WRITE)
    )
    async def upsert_initiative(
        self, info: strawberry.Info, input: Annotated[inputs.UpsertInitiativeInput, WHAT_TO_DO]
    ) -> UpsertInitiativePayload | None:
        outcome = await run(
            info,
            lambda session, actor: sync.upsert(
                session, actor, specs.INITIATIVE, upsert_item(input, specs.INITIATIVE)
            ),
        )
        return _one(outcome, "initiative", UpsertInitiativePayload)

    @strawberry.mutation(
        name="upsertInitiatives",
        **guarded(UPSERT_MANY.format("initiative", "Initiative"), Scope.INITIATIVES_WRITE),
    )
    async def upsert_initiatives(
        self, info: strawberry.Info, input: Annotated[inputs.UpsertInitiativesInput, WHAT_TO_DO]
    ) -> UpsertInitiativesPayload | None:  # type: ignore[valid-type]
        outcome = await run(
            info,
            lambda session, actor: sync.upsert_many(
                session, actor, specs.INITIATIVE, batch_items(input.items, specs.INITIATIVE)
            ),
        )
        return _many(
            outcome,
            "initiative",
            UpsertInitiativesPayload,
            UpsertInitiativePayload,
            len(input.items),
        )

    @strawberry.mutation(
        name="upsertTechnicalConstraint",
        **guarded(UPSERT.format("technical constraint"), Scope.CONSTRAINTS_WRITE),
    )
    async def upsert_technical_constraint(
        self,
        info: strawberry.Info,
        input: Annotated[inputs.UpsertTechnicalConstraintInput, WHAT_TO_DO],
    ) -> UpsertTechnicalConstraintPayload | None:
        outcome = await run(
            info,
            lambda session, actor: sync.upsert(
                session, actor, specs.CONSTRAINT, upsert_item(input, specs.CONSTRAINT)
            ),
        )
        return _one(outcome, "technical_constraint", UpsertTechnicalConstraintPayload)

    @strawberry.mutation(
        name="upsertTechnicalConstraints",
        **guarded(
            UPSERT_MANY.format("technical constraint", "TechnicalConstraint"),
            Scope.CONSTRAINTS_WRITE,
        ),
    )
    async def upsert_technical_constraints(
        self,
        info: strawberry.Info,
        input: Annotated[inputs.UpsertTechnicalConstraintsInput, WHAT_TO_DO],
    ) -> UpsertTechnicalConstraintsPayload | None:  # type: ignore[valid-type]
        outcome = await run(
            info,
            lambda session, actor: sync.upsert_many(
                session, actor, specs.CONSTRAINT, batch_items(input.items, specs.CONSTRAINT)
            ),
        )
        return _many(
            outcome,
            "technical_constraint",
            UpsertTechnicalConstraintsPayload,
            UpsertTechnicalConstraintPayload,
            len(input.items),
        )

    @strawberry.mutation(name="upsertKpi", **guarded(UPSERT.format("KPI"), Scope.KPIS_WRITE))
    async def upsert_kpi(
        self, info: strawberry.Info, input: Annotated[inputs.UpsertKpiInput, WHAT_TO_DO]
    ) -> UpsertKpiPayload | None:
        outcome = await run(
            info,
            lambda session, actor: sync.upsert(
                session, actor, specs.KPI, upsert_item(input, specs.KPI)
            ),
        )
        return _one(outcome, "kpi", UpsertKpiPayload)

    @strawberry.mutation(
        name="upsertKpis", **guarded(UPSERT_MANY.format("KPI", "Kpi"), Scope.KPIS_WRITE)
    )
    async def upsert_kpis(
        self, info: strawberry.Info, input: Annotated[inputs.UpsertKpisInput, WHAT_TO_DO]
    ) -> UpsertKpisPayload | None:  # type: ignore[valid-type]
        outcome = await run(
            info,
            lambda session, actor: sync.upsert_many(
                session, actor, specs.KPI, batch_items(input.items, specs.KPI)
            ),
        )
        return _many(outcome, "kpi", UpsertKpisPayload, UpsertKpiPayload, len(input.items))

    @strawberry.mutation(
        name="setProductExternalRef", **guarded(setting_ref("product"), Scope.PRODUCTS_WRITE)
    )
    async def set_product_external_ref(
        self, info: strawberry.Info, input: Annotated[inputs.SetExternalRefInput, WHAT_TO_DO]
    ) -> ProductPayload | None:
        outcome = await run(
            info, lambda session, actor: set_ref(session, actor, specs.PRODUCT, input)
        )
        return ProductPayload(product=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(
        name="removeProductExternalRef",
        **guarded(removing_ref("product"), Scope.PRODUCTS_WRITE),
    )
    async def remove_product_external_ref(
        self, info: strawberry.Info, input: Annotated[inputs.RemoveExternalRefInput, WHAT_TO_DO]
    ) -> ProductPayload | None:
        outcome = await run(
            info, lambda session, actor: remove_ref(session, actor, specs.PRODUCT, input)
        )
        return ProductPayload(product=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(
        name="setInitiativeExternalRef",
        **guarded(setting_ref("initiative"), Scope.INITIATIVES_WRITE),
    )
    async def set_initiative_external_ref(
        self, info: strawberry.Info, input: Annotated[inputs.SetExternalRefInput, WHAT_TO_DO]
    ) -> InitiativePayload | None:
        outcome = await run(
            info, lambda session, actor: set_ref(session, actor, specs.INITIATIVE, input)
        )
        return InitiativePayload(initiative=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(
        name="removeInitiativeExternalRef",
        **guarded(removing_ref("initiative"), Scope.INITIATIVES_WRITE),
    )
    async def remove_initiative_external_ref(
        self, info: strawberry.Info, input: Annotated[inputs.RemoveExternalRefInput, WHAT_TO_DO]
    ) -> InitiativePayload | None:
        outcome = await run(
            info, lambda session, actor: remove_ref(session, actor, specs.INITIATIVE, input)
        )
        return InitiativePayload(initiative=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(
        name="setTechnicalConstraintExternalRef",
        **guarded(setting_ref("technical constraint"), Scope.CONSTRAINTS_WRITE),
    )
    async def set_technical_constraint_external_ref(
        self, info: strawberry.Info, input: Annotated[inputs.SetExternalRefInput, WHAT_TO_DO]
    ) -> TechnicalConstraintPayload | None:
        outcome = await run(
            info, lambda session, actor: set_ref(session, actor, specs.CONSTRAINT, input)
        )
        return TechnicalConstraintPayload(
            technical_constraint=outcome.value, user_errors=outcome.errors
        )

    @strawberry.mutation(
        name="removeTechnicalConstraintExternalRef",
        **guarded(removing_ref("technical constraint"), Scope.CONSTRAINTS_WRITE),
    )
    async def remove_technical_constraint_external_ref(
        self, info: strawberry.Info, input: Annotated[inputs.RemoveExternalRefInput, WHAT_TO_DO]
    ) -> TechnicalConstraintPayload | None:
        outcome = await run(
            info, lambda session, actor: remove_ref(session, actor, specs.CONSTRAINT, input)
        )
        return TechnicalConstraintPayload(
            technical_constraint=outcome.value, user_errors=outcome.errors
        )

    @strawberry.mutation(name="setKpiExternalRef", **guarded(setting_ref("KPI"), Scope.KPIS_WRITE))
    async def set_kpi_external_ref(
        self, info: strawberry.Info, input: Annotated[inputs.SetExternalRefInput, WHAT_TO_DO]
    ) -> KpiPayload | None:
        outcome = await run(info, lambda session, actor: set_ref(session, actor, specs.KPI, input))
        return KpiPayload(kpi=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(
        name="removeKpiExternalRef", **guarded(removing_ref("KPI"), Scope.KPIS_WRITE)
    )
    async def remove_kpi_external_ref(
        self, info: strawberry.Info, input: Annotated[inputs.RemoveExternalRefInput, WHAT_TO_DO]
    ) -> KpiPayload | None:
        outcome = await run(
            info, lambda session, actor: remove_ref(session, actor, specs.KPI, input)
        )
        return KpiPayload(kpi=outcome.value, user_errors=outcome.errors)
