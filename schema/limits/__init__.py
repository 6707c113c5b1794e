"""Query cost, limits and rate limiting, checked before anything runs.

``cost``: what an operation costs; ``measured``: costs remembered by operation and
variables; ``extension``: the strawberry extension that refuses and charges;
``size``: documents refused before validation.
"""

from schema.limits.extension import QueryLimits, cost_extension
from schema.limits.measured import known_measurement
from schema.limits.size import BoundedValidationCache

__all__ = ["BoundedValidationCache", "QueryLimits", "cost_extension", "known_measurement"]
