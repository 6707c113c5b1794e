"""The domain's rules for writes: field checks, hierarchy, status transitions, blocking."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.models import (
    ConstraintStatus,
    Initiative,
    InitiativeStatus,
    KpiDirection,
)
from domain.models.external_refs import MAX_EXTERNAL_ID, MAX_URL, SYSTEM_PATTERN
from domain.models.kpi import MAX_EXPECTED_INTERVAL_SECONDS, MIN_EXPECTED_INTERVAL_SECONDS
from domain.models.portfolio import KEY_PATTERN
from domain.services import reads
from domain.services.external_refs import RefIn
from domain.services.spelling import camel
from domain.services.writes import Given, Refused, UserError

KPI_KEY_PATTERN = r"^[A-Z][A-Z0-9_-]{1,47}$"

# Allowed status moves; anything else is refused with the allowed ones listed.
INITIATIVE_TRANSITIONS: dict[InitiativeStatus, frozenset[InitiativeStatus]] = {
    InitiativeStatus.PROPOSED: frozenset({InitiativeStatus.APPROVED, InitiativeStatus.CANCELLED}),
    InitiativeStatus.APPROVED: frozenset(
        {InitiativeStatus.IN_PROGRESS, InitiativeStatus.PROPOSED, InitiativeStatus.CANCELLED}
    ),
    InitiativeStatus.IN_PROGRESS: frozenset(
        {InitiativeStatus.DONE, InitiativeStatus.APPROVED, InitiativeStatus.CANCELLED}
    ),
    InitiativeStatus.DONE: frozenset(),
    InitiativeStatus.CANCELLED: frozenset({InitiativeStatus.PROPOSED}),
}
INITIAL_INITIATIVE_STATUSES = frozenset({InitiativeStatus.PROPOSED, InitiativeStatus.APPROVED})

CONSTRAINT_TRANSITIONS: dict[ConstraintStatus, frozenset[ConstraintStatus]] = {
    ConstraintStatus.OPEN: frozenset(
        {ConstraintStatus.MITIGATING, ConstraintStatus.RESOLVED, ConstraintStatus.ACCEPTED}
    ),
    ConstraintStatus.MITIGATING: frozenset(
        {ConstraintStatus.OPEN, ConstraintStatus.RESOLVED, ConstraintStatus.ACCEPTED}
    ),
    ConstraintStatus.RESOLVED: frozenset({ConstraintStatus.OPEN}),
    ConstraintStatus.ACCEPTED: frozenset({ConstraintStatus.OPEN}),
}


class Checks:
    """Collects user errors for one input. On a ``Given`` state (an update's input alone)
    a check of one field skips a field the input leaves out: it passed when it was
    stored. A check across fields needs them all once any is given."""

    def __init__(self, state: Mapping[str, Any]) -> None:
        self.state = state
        self.errors: list[UserError] = []

    def left_out(self, *fields: str) -> bool:
        """Whether the state is an input alone that sets none of ``fields``."""
        return isinstance(self.state, Given) and not any(f in self.state for f in fields)

    def fail(self, field: str, message: str, code: str = "INVALID") -> None:
        self.errors.append(UserError(field, code, message))

    def text(self, field: str, *, required: bool = True, max_length: int | None = None) -> None:
        if self.left_out(field):
            return
        value = self.state.get(field)
        if value is None or not str(value).strip():
            if required:
                self.fail(field, f"`{camel(field)}` must not be blank.")
            return
        if max_length is not None and len(value) > max_length:
            self.fail(field, f"`{camel(field)}` is limited to {max_length} characters.")

    def pattern(self, field: str, pattern: str, example: str) -> None:
        if self.left_out(field):
            return
        value = self.state.get(field)
        if value is not None and not re.fullmatch(pattern, value):
            self.fail(
                field,
                f"`{camel(field)}` must be 2 to {_max_length(pattern)} upper-case letters, "
                f"digits or dashes, starting with a letter (e.g. {example}).",
            )

    def between(self, field: str, low: float, high: float, *, low_open: bool = False) -> None:
        if self.left_out(field):
            return
        value = self.state.get(field)
        if value is None:
            return
        too_low = value <= low if low_open else value < low
        if too_low or value > high:
            bound = f"greater than {low:g}" if low_open else f"at least {low:g}"
            self.fail(field, f"`{camel(field)}` must be {bound} and at most {high:g}; got {value}.")

    def at_least(self, field: str, low: float, *, strict: bool = False) -> None:
        if self.left_out(field):
            return
        value = self.state.get(field)
        if value is None:
            return
        if value < low or (strict and value == low):
            relation = "greater than" if strict else "at least"
            self.fail(field, f"`{camel(field)}` must be {relation} {low:g}; got {value}.")

    def ordered(self, start: str, end: str) -> None:
        if self.left_out(start, end):
            return
        first, last = self.state.get(start), self.state.get(end)
        if first is not None and last is not None and last < first:
            self.fail(end, f"`{camel(end)}` ({last}) is before `{camel(start)}` ({first}).")


def _max_length(pattern: str) -> int:
    return int(re.findall(r"\d+", pattern)[-1]) + 1


async def team_rules(
    session: AsyncSession, state: Mapping[str, Any], entity: Any
) -> list[UserError]:
    checks = Checks(state)
    checks.pattern("key", KEY_PATTERN, "PAYMENTS-ENG")
    checks.text("name", max_length=200)
    return checks.errors


async def product_rules(
    session: AsyncSession, state: Mapping[str, Any], entity: Any
) -> list[UserError]:
    checks = Checks(state)
    checks.pattern("key", KEY_PATTERN, "PAY")
    checks.text("name", max_length=200)
    return checks.errors


async def initiative_rules(
    session: AsyncSession, state: Mapping[str, Any], entity: Any
) -> list[UserError]:
    checks = Checks(state)
    checks.pattern("key", KEY_PATTERN, "PAY-12")
    checks.text("title", max_length=300)
    checks.ordered("target_start", "target_end")
    checks.at_least("reach", 0)
    checks.between("impact", 0, 3, low_open=True)
    checks.between("confidence", 0, 1)
    checks.at_least("effort", 0, strict=True)
    for wsjf_input in ("business_value", "time_criticality", "risk_reduction", "job_size"):
        checks.between(wsjf_input, 1, 20)
    checks.at_least("estimated_cost", 0)
    if entity is None and state.get("status") not in INITIAL_INITIATIVE_STATUSES:
        checks.fail("status", "A new initiative starts as PROPOSED or APPROVED.")
    # An unchanged parent cannot make a new cycle, nor can a new initiative (nothing is
    # below it yet) or a removed parent.
    parent_id = None if checks.left_out("parent_id") else state.get("parent_id")
    if entity is not None and parent_id is not None and parent_id != entity.parent_id:
        await lock_hierarchy(session)
        if await _is_descendant(session, ancestor=entity.id, candidate=parent_id):
            checks.fail(
                "parent_id", "This parent would create a cycle in the initiative hierarchy."
            )
    return checks.errors


# The key of the one advisory lock that serialises changes of a parent: "hierarch" in
# ASCII (any constant does; nothing else in this database takes advisory locks).
HIERARCHY_LOCK = int.from_bytes(b"hierarch", "big")


async def lock_hierarchy(session: AsyncSession) -> None:
    """Wait for every other transaction that is moving an initiative to end.

    Two moves checked each on its own snapshot can each be fine and together close a
    cycle (with B under C: "A under B" and "C under A"), and row locks cannot see it:
    they touch different rows. So every change of a parent takes this one
    transaction-level advisory lock, held until commit or rollback, before its cycle
    check: that check's statement (READ COMMITTED) then sees every other move
    committed, and none in flight. One key for the whole hierarchy is coarse, but moves
    are rare and short, and it needs no care for which subtrees a move touches.
    SERIALIZABLE isolation would also catch it, but as failures to retry on every write
    of the request, not as one wait here.

    Taken after the moved row's lock (``writes.lock``): the lock holder then
    only waits for rows it references as a new parent, with FOR KEY SHARE, which the
    FOR NO KEY UPDATE row locks of other writers never block, so the order cannot
    deadlock."""
    await session.execute(select(func.pg_advisory_xact_lock(HIERARCHY_LOCK)))


async def _is_descendant(session: AsyncSession, *, ancestor: int, candidate: int) -> bool:
    """True when ``candidate`` is ``ancestor`` itself or below it."""
    walk = (
        select(Initiative.id, Initiative.parent_id)
        .where(Initiative.id == candidate)
        .cte("walk", recursive=True)
    )
    walk = walk.union(
        select(Initiative.id, Initiative.parent_id).join(walk, Initiative.id == walk.c.parent_id)
    )
    found = await session.scalar(
        select(literal(True)).where(walk.c.id == ancestor).select_from(walk)
    )
    return bool(found)


async def constraint_rules(
    session: AsyncSession, state: Mapping[str, Any], entity: Any
) -> list[UserError]:
    checks = Checks(state)
    checks.pattern("key", KEY_PATTERN, "SEC-3")
    checks.text("title", max_length=300)
    return checks.errors


async def kpi_rules(
    session: AsyncSession, state: Mapping[str, Any], entity: Any
) -> list[UserError]:
    checks = Checks(state)
    checks.pattern("key", KPI_KEY_PATTERN, "PAY-UPTIME")
    checks.text("name", max_length=200)
    checks.text("unit", max_length=32)
    checks.text("it_relevance")
    checks.text("product_relevance")
    interval = (
        None
        if checks.left_out("expected_interval_seconds")
        else state.get("expected_interval_seconds")
    )
    if interval is not None and not (
        MIN_EXPECTED_INTERVAL_SECONDS <= interval <= MAX_EXPECTED_INTERVAL_SECONDS
    ):
        checks.fail(
            "expected_interval_seconds",
            f"`expectedIntervalSeconds` must be between {MIN_EXPECTED_INTERVAL_SECONDS} (a "
            f"minute) and {MAX_EXPECTED_INTERVAL_SECONDS} (366 days); got {interval}.",
        )
    thresholds = ("warning_threshold", "critical_threshold", "direction")
    warning = critical = None
    if not checks.left_out(*thresholds):
        warning, critical = state.get("warning_threshold"), state.get("critical_threshold")
    if warning is not None and critical is not None:
        higher = state.get("direction") == KpiDirection.HIGHER_IS_BETTER
        if (higher and critical > warning) or (not higher and critical < warning):
            worse = "below" if higher else "above"
            checks.fail(
                "critical_threshold",
                f"`criticalThreshold` must be at or {worse} `warningThreshold` for "
                f"{state.get('direction')}.",
            )
    return checks.errors


async def glossary_rules(
    session: AsyncSession, state: Mapping[str, Any], entity: Any
) -> list[UserError]:
    checks = Checks(state)
    checks.text("term", max_length=120)
    checks.text("definition")
    return checks.errors


def check_transition(
    name: str, current: Any, target: Any, transitions: Mapping[Any, frozenset[Any]]
) -> None:
    if target == current:
        return
    allowed = transitions[current]
    if target not in allowed:
        options = ", ".join(sorted(s.value for s in allowed)) or "none"
        raise Refused(
            UserError(
                "status",
                "INVALID",
                f"{name} cannot move from {current.value} to {target.value}; allowed: {options}.",
            )
        )


async def check_can_start(session: AsyncSession, initiative: Any) -> None:
    """An initiative (its locked row) cannot move to IN_PROGRESS while blocked; name
    what blocks it."""
    blockers = (await reads.blocking_constraints(session, [initiative.id])).get(initiative.id)
    if blockers:
        keys = ", ".join(c.key for c in blockers)
        raise Refused(
            UserError(
                "status",
                "BLOCKED",
                f"Initiative {initiative.key} is blocked by {keys}: resolve or accept "
                "them before starting it.",
            )
        )


_SYSTEM = re.compile(SYSTEM_PATTERN)


def external_ref_rules(refs: Sequence[RefIn], field: str) -> list[UserError]:
    """References given in ``field`` (a list): a short slug as the system, a non-empty
    bounded ID, an absolute http(s) URL if any, and at most one per system."""
    errors: list[UserError] = []
    seen: set[str] = set()
    for index, ref in enumerate(refs):
        where = f"{field}.{index}"
        if not _SYSTEM.match(ref.system):
            errors.append(
                UserError(
                    f"{where}.system",
                    "INVALID",
                    "`system` must be a short lowercase name: a letter, then up to 31 "
                    "letters, digits, `_`, `.` or `-` (e.g. `jira`).",
                )
            )
        elif ref.system in seen:
            errors.append(
                UserError(
                    f"{where}.system",
                    "INVALID",
                    f"`{ref.system}` is given twice: an object has one reference per system.",
                )
            )
        seen.add(ref.system)
        if not ref.external_id.strip():
            errors.append(UserError(f"{where}.external_id", "INVALID", "`externalId` is empty."))
        elif len(ref.external_id) > MAX_EXTERNAL_ID:
            errors.append(
                UserError(
                    f"{where}.external_id",
                    "INVALID",
                    f"`externalId` is limited to {MAX_EXTERNAL_ID} characters.",
                )
            )
        if ref.url is not None:
            message = _url_problem(ref.url)
            if message is not None:
                errors.append(UserError(f"{where}.url", "INVALID", message))
    return errors


def _url_problem(url: str) -> str | None:
    if len(url) > MAX_URL:
        return f"`url` is limited to {MAX_URL} characters."
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        host = None
    if host is None or parts.scheme not in {"http", "https"} or any(c.isspace() for c in url):
        return "`url` must be an absolute http:// or https:// URL."
    return None
