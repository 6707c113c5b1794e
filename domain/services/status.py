"""Status changes of initiatives and constraints, with their transitions and rules."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from domain.models import ConstraintStatus, Initiative, InitiativeStatus, TechnicalConstraint
from domain.services import rules, specs, writes
from domain.services.writes import Actor


async def set_initiative_status(
    session: AsyncSession,
    actor: Actor,
    initiative_id: int,
    status: InitiativeStatus,
    expected_version: int | None,
) -> Initiative:
    initiative = await writes.load_for_update(
        session, specs.INITIATIVE, initiative_id, expected_version
    )
    rules.check_transition("Initiative", initiative.status, status, rules.INITIATIVE_TRANSITIONS)
    if status is InitiativeStatus.IN_PROGRESS and initiative.status is not status:
        await rules.check_can_start(session, initiative)
    result: Initiative = await writes.update(
        session, actor, specs.INITIATIVE, initiative_id, None, {"status": status}
    )
    return result


async def set_constraint_status(
    session: AsyncSession,
    actor: Actor,
    constraint_id: int,
    status: ConstraintStatus,
    expected_version: int | None,
) -> TechnicalConstraint:
    constraint = await writes.load_for_update(
        session, specs.CONSTRAINT, constraint_id, expected_version
    )
    rules.check_transition(
        "TechnicalConstraint", constraint.status, status, rules.CONSTRAINT_TRANSITIONS
    )
    result: TechnicalConstraint = await writes.update(
        session, actor, specs.CONSTRAINT, constraint_id, None, {"status": status}
    )
    return result
