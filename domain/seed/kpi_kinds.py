"""The four KPIs every product shares, and how their measurements are simulated.

Business and technology watch the same four numbers; each kind says why each side
cares. Both the demo portfolio and the benchmark generator build their KPIs and
measurement series from these definitions.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from domain.models import KpiDirection, KpiImportance, KpiStatus
from domain.seed.bulk import Row

# Fixed "today" of the seeded world: data never depends on when it is loaded (tests and
# benchmarks). The CLI's demo passes its own day instead (latest_observation_day) so
# that a newcomer sees fresh KPIs.
REFERENCE_DATE = date(2026, 11, 1)
HISTORY_DAYS = 365
# Monitoring pipelines push the daily figure once, at the same hour.
OBSERVATION_TIME = time(6, 0, tzinfo=UTC)


def observation_days(
    count: int, rng: random.Random | None = None, last: date = REFERENCE_DATE
) -> list[date]:
    """``count`` distinct days spread over the year ending on ``last``, oldest first.

    With ``rng`` the days get a little jitter (never on the last one, which stays
    ``last`` so that every KPI's latest value is as recent as the others).
    """
    first = last - timedelta(days=HISTORY_DAYS - 1)
    if count >= HISTORY_DAYS:
        return [first + timedelta(days=i) for i in range(HISTORY_DAYS)]
    step = (HISTORY_DAYS - 1) / (count - 1)
    jitter = int(step // 3)  # a third of the spacing keeps the days distinct and ordered
    days = []
    for i in range(count):
        offset = round(i * step)
        if rng is not None and 0 < i < count - 1:
            offset += rng.randint(-jitter, jitter)
        days.append(first + timedelta(days=offset))
    return days


def observed_at(day: date) -> datetime:
    return datetime.combine(day, OBSERVATION_TIME)


def latest_observation_day(now: datetime) -> date:
    """The last day whose daily observation time is not after ``now``: today once the
    pipelines have pushed, yesterday before (a seed never records the future)."""
    today = now.astimezone(UTC).date()
    return today if observed_at(today) <= now else today - timedelta(days=1)


def _uptime(level: float, rng: random.Random) -> float:
    value = level + rng.gauss(0, 0.015)
    if rng.random() < 0.04:  # an outage: minutes to a few hours lost that day
        value -= rng.expovariate(1 / 0.35)
    return min(100.0, max(90.0, value))


def _adoption(level: float, rng: random.Random) -> float:
    return min(100.0, max(0.0, level + rng.gauss(0, 0.4 + level * 0.03)))


def _load_time(level: float, rng: random.Random) -> float:
    value = level * (1 + rng.gauss(0, 0.05))
    if rng.random() < 0.03:  # a slow deploy or a cold cache
        value *= rng.uniform(1.3, 1.8)
    return max(100.0, value)


def _incidents(level: float, rng: random.Random) -> float:
    value = level + rng.gauss(0, level * 0.25)
    if rng.random() < 0.05:  # a bad release day
        value += rng.uniform(0.5, 2.0)
    return max(0.0, value)


@dataclass(frozen=True)
class KpiKind:
    suffix: str  # KPI key = <PRODUCT-KEY>-<suffix>
    name: str
    unit: str
    direction: KpiDirection
    target: float
    warning: float
    critical: float
    description: str
    it_relevance: str
    product_relevance: str
    # The level beside each prose (KpiImportance says what each level means).
    it_importance: KpiImportance
    product_importance: KpiImportance
    decimals: int
    observe: Callable[[float, random.Random], float]  # one noisy observation around a level
    # Where a generated KPI's level may end for each status, given the default target and
    # thresholds: ON_TARGET meets the target, OFF_TARGET misses it short of warning.
    bands: dict[KpiStatus, tuple[float, float]]
    # How often the monitoring pipeline pushes a value: daily, like the seeded series.
    expected_interval_seconds: int = 86_400

    def row(self, key: str, product_name: str, product_id: int, owner_team_id: int) -> Row:
        """A KPI row of this kind for one product, with the kind's default thresholds."""
        return {
            "key": key,
            "name": f"{self.name} — {product_name}",
            "description": self.description,
            "unit": self.unit,
            "direction": self.direction,
            "target": self.target,
            "warning_threshold": self.warning,
            "critical_threshold": self.critical,
            "it_relevance": self.it_relevance,
            "product_relevance": self.product_relevance,
            "it_importance_level": self.it_importance,
            "product_importance_level": self.product_importance,
            "expected_interval_seconds": self.expected_interval_seconds,
            "product_id": product_id,
            "owner_team_id": owner_team_id,
        }

    def series(self, start: float, end: float, count: int, rng: random.Random) -> list[float]:
        """``count`` observations drifting from ``start`` to ``end`` with realistic noise.

        The last one is exactly ``end``: the latest value decides the KPI's status, and
        the seeded status must be the designed one, not an accident of the noise.
        """
        values = [
            round(self.observe(start + (end - start) * i / max(count - 1, 1), rng), self.decimals)
            for i in range(count - 1)
        ]
        return [*values, round(end, self.decimals)]


UPTIME = KpiKind(
    suffix="UPTIME",
    name="System uptime",
    unit="%",
    direction=KpiDirection.HIGHER_IS_BETTER,
    target=99.9,
    warning=99.5,
    critical=99.0,
    description="Share of the day the service answered its synthetic checks and real "
    "requests successfully.",
    it_relevance="The service level objective behind on-call, alerting and the error budget: "
    "every minute below 99.9% burns budget and, once it is spent, freezes releases in favour "
    "of reliability work.",
    product_relevance="When the service is down customers cannot browse, buy or pay: downtime "
    "is lost revenue, support calls and lost trust, and it can breach partner SLAs.",
    it_importance=KpiImportance.CRITICAL,
    product_importance=KpiImportance.CRITICAL,
    decimals=3,
    observe=_uptime,
    bands={
        KpiStatus.ON_TARGET: (99.9, 99.99),
        KpiStatus.OFF_TARGET: (99.6, 99.85),
        KpiStatus.WARNING: (99.1, 99.45),
        KpiStatus.CRITICAL: (97.5, 98.9),
    },
)

ADOPTION = KpiKind(
    suffix="ADOPTION",
    name="Feature adoption rate",
    unit="%",
    direction=KpiDirection.HIGHER_IS_BETTER,
    target=40.0,
    warning=25.0,
    critical=15.0,
    description="Share of active users who used the product's key feature in the last 30 days.",
    it_relevance="Shows which features carry real traffic, so capacity, maintenance and "
    "deprecation effort go where users are; needs correct event instrumentation.",
    product_relevance="Tells whether what we shipped delivers value: low adoption means "
    "iterate, market or retire the feature instead of building more on top of it.",
    it_importance=KpiImportance.INDIRECT,
    product_importance=KpiImportance.CRITICAL,
    decimals=1,
    observe=_adoption,
    bands={
        KpiStatus.ON_TARGET: (40.0, 60.0),
        KpiStatus.OFF_TARGET: (27.0, 38.0),
        KpiStatus.WARNING: (16.0, 24.0),
        KpiStatus.CRITICAL: (3.0, 14.0),
    },
)

LOAD_TIME = KpiKind(
    suffix="LOAD-TIME",
    name="Page load time",
    unit="ms",
    direction=KpiDirection.LOWER_IS_BETTER,
    target=1500.0,
    warning=2500.0,
    critical=4000.0,
    description="75th percentile Largest Contentful Paint from real-user monitoring.",
    it_relevance="A direct readout of front-end weight, API latency, caching and CDN health; "
    "regressions point at a release, a slow dependency or missing capacity.",
    product_relevance="Slow pages convert less and rank lower in search engines: every extra "
    "second on product and checkout pages costs orders.",
    it_importance=KpiImportance.HIGH,
    product_importance=KpiImportance.HIGH,
    decimals=0,
    observe=_load_time,
    bands={
        KpiStatus.ON_TARGET: (800.0, 1500.0),
        KpiStatus.OFF_TARGET: (1600.0, 2300.0),
        KpiStatus.WARNING: (2600.0, 3800.0),
        KpiStatus.CRITICAL: (4100.0, 6000.0),
    },
)

INCIDENTS = KpiKind(
    suffix="INCIDENTS",
    name="Bug and incident rate",
    unit="incidents per 1k sessions",
    direction=KpiDirection.LOWER_IS_BETTER,
    target=0.5,
    warning=1.0,
    critical=2.0,
    description="Production incidents and customer-reported bugs per 1,000 sessions.",
    it_relevance="Measures release quality and operational load: a rising rate means more "
    "on-call pages, more hotfixes and less time for planned work.",
    product_relevance="Every bug a customer meets is friction in their journey and a support "
    "contact; a rising rate erodes trust faster than new features build it.",
    it_importance=KpiImportance.HIGH,
    product_importance=KpiImportance.HIGH,
    decimals=2,
    observe=_incidents,
    bands={
        KpiStatus.ON_TARGET: (0.1, 0.5),
        KpiStatus.OFF_TARGET: (0.6, 0.9),
        KpiStatus.WARNING: (1.1, 1.9),
        KpiStatus.CRITICAL: (2.1, 4.0),
    },
)

KPI_KINDS: Sequence[KpiKind] = (UPTIME, ADOPTION, LOAD_TIME, INCIDENTS)
