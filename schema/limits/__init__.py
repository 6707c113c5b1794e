"""Query cost, limits and rate limiting, checked before anything runs.

``cost``: what an operation costs; ``measured``: costs remembered by operation and
variables; ``extension``: the strawberry extension that refuses and charges;
``size``: documents refused before validation; ``documents``: refused by size before
parsing, charged, parsed and validated in a cache bounded by bytes.
"""

from schema.limits.documents import Documents
from schema.limits.extension import QueryLimits, cost_extension
from schema.limits.measured import known_measurement

__all__ = ["Documents", "QueryLimits", "cost_extension", "known_measurement"]
