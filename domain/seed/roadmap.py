"""Initiative numbers shared by the demo and the generator: scoring inputs, cost, roll-up."""

from __future__ import annotations

import random
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from domain.seed.bulk import Row

FIBONACCI = (1, 2, 3, 5, 8, 13, 20)  # the WSJF relative scale (1..20)
IMPACTS = (0.25, 0.5, 1.0, 2.0, 3.0)  # RICE impact: minimal, low, medium, high, massive
COST_PER_PERSON_MONTH = 14_000  # fully loaded, in the portfolio's currency
RICE_INPUTS = ("reach", "impact", "confidence", "effort")
WSJF_INPUTS = ("business_value", "time_criticality", "risk_reduction", "job_size")
# A theme is a container: it has no inputs of its own and its cost is its children's.
UNSCORED: Row = dict.fromkeys((*RICE_INPUTS, *WSJF_INPUTS, "estimated_cost"))


def scoring_inputs(
    rng: random.Random, months: float, missing: Iterable[str] = ()
) -> dict[str, Any]:
    """RICE and WSJF inputs in realistic ranges and the cost they imply; ``missing``
    names inputs left unknown (their score is then null)."""
    effort = round(max(months, 0.5) * rng.uniform(1.5, 4.0), 1)  # person-months
    inputs: dict[str, Any] = {
        "reach": int(round(10 ** rng.uniform(2.5, 5.3), -2)),  # customers per quarter
        "impact": rng.choice(IMPACTS),
        "confidence": round(rng.uniform(0.4, 1.0), 2),
        "effort": effort,
        "business_value": rng.choice(FIBONACCI),
        "time_criticality": rng.choice(FIBONACCI),
        "risk_reduction": rng.choice(FIBONACCI),
        "job_size": rng.choice(FIBONACCI),
        "estimated_cost": Decimal(round(effort * COST_PER_PERSON_MONTH, -2)).quantize(
            Decimal("0.01")
        ),
    }
    return inputs | dict.fromkeys(missing)


def roll_up(parent: Row, child: Row) -> None:
    """A parent spans its child's dates and its cost includes the child's.

    Call it children-first (deepest level first) so costs add up through every level.
    """
    starts = [d for d in (parent["target_start"], child["target_start"]) if d is not None]
    ends = [d for d in (parent["target_end"], child["target_end"]) if d is not None]
    parent["target_start"] = min(starts, default=None)
    parent["target_end"] = max(ends, default=None)
    if child["estimated_cost"] is not None:
        parent["estimated_cost"] = (parent["estimated_cost"] or Decimal(0)) + child[
            "estimated_cost"
        ]
