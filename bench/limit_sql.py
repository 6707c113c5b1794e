"""The limit's statements: for each read workload, one hand-written SQL statement that
builds the whole answer as JSON text, with our rules (archived rows excluded, ordering by
key then id, KPI status and ``isBlocked`` as the domain computes them, Relay cursors as
``encode_cursor`` writes them). bench/runner.py checks their `data` against ours.

The JSON is concatenated text, as our compiler writes it (schema/compiled/jsontext.py):
json_build_object costs PostgreSQL about a third more, so a limit written with it would
be a lower ceiling than our own statements reach. Floats are written as GraphQL writes
them (graphql_float: 40.0, not PostgreSQL's 40): the answer must be ours. Statements run
in a UTC session (bench.limit.create_pool), as ours do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Limit:
    """A workload's statement, and its arguments for a request's pick: what the request
    varies, as the limit over HTTP receives it in JSON (bench/limit_http.py)."""

    sql: str
    args: Callable[[Any], tuple[Any, ...]]


# --- shared pieces -------------------------------------------------------------------

# Uncorrelated, so PostgreSQL builds each set of blocked initiatives once per statement
# (a hashed subplan) instead of probing per initiative (``i`` is the initiative).
IS_BLOCKED = """
(i.id IN (SELECT ci.initiative_id FROM constraint_initiatives ci
          JOIN technical_constraints c ON c.id = ci.constraint_id
          WHERE c.severity = 'BLOCKER' AND c.status IN ('OPEN', 'MITIGATING')
            AND c.archived_at IS NULL)
 OR i.id IN (SELECT ip2.initiative_id FROM initiative_products ip2
             JOIN constraint_products cp ON cp.product_id = ip2.product_id
             JOIN technical_constraints c ON c.id = cp.constraint_id
             WHERE c.severity = 'BLOCKER' AND c.status IN ('OPEN', 'MITIGATING')
               AND c.archived_at IS NULL))"""

# A KPI's status from its latest value ``m.value`` (``k`` is the KPI).
KPI_STATUS = """
CASE
  WHEN m.value IS NULL THEN 'NO_DATA'
  WHEN (k.direction = 'HIGHER_IS_BETTER' AND m.value <= k.critical_threshold)
    OR (k.direction = 'LOWER_IS_BETTER' AND m.value >= k.critical_threshold) THEN 'CRITICAL'
  WHEN (k.direction = 'HIGHER_IS_BETTER' AND m.value <= k.warning_threshold)
    OR (k.direction = 'LOWER_IS_BETTER' AND m.value >= k.warning_threshold) THEN 'WARNING'
  WHEN k.target IS NULL
    OR (k.direction = 'HIGHER_IS_BETTER' AND m.value >= k.target)
    OR (k.direction = 'LOWER_IS_BETTER' AND m.value <= k.target) THEN 'ON_TARGET'
  ELSE 'OFF_TARGET'
END"""

# The latest measurement of KPI ``k`` (a lateral join's body).
LATEST_MEASUREMENT = """
SELECT value, observed_at FROM kpi_measurements x WHERE x.kpi_id = k.id
ORDER BY x.observed_at DESC, x.id DESC LIMIT 1"""

# KPI ``k``'s weekly buckets in [$2, $3), the elements of `series` (without brackets).
WEEKLY_SERIES = """
coalesce((
  SELECT string_agg('{"bucketStart":' || to_json(s.bucket)::text
                    || ',"average":' || graphql_float(s.average)::text
                    || ',"count":' || s.count || '}',
                    ',' ORDER BY s.bucket)
  FROM (SELECT date_bin('7 days', m.observed_at, TIMESTAMPTZ '2001-01-01 00:00:00+00') AS bucket,
               avg(m.value) AS average, count(*) AS count
        FROM kpi_measurements m
        WHERE m.kpi_id = k.id AND m.observed_at >= $2 AND m.observed_at < $3
        GROUP BY 1) s
), '')"""


def iso_instant(column: str) -> str:
    """A timestamptz as Python's isoformat writes it (UTC): microseconds only if any."""
    return f"""(CASE WHEN {column} = date_trunc('second', {column}) THEN to_json({column})::text
      ELSE to_json(to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')
                   || '+00:00')::text END)"""


def nodes(element: str, rows: str, order: str) -> str:
    """The elements of a `nodes` list (without brackets): ``element`` for each of
    ``rows`` (a FROM clause), in ``order``; empty text when there are none."""
    return f"coalesce((SELECT string_agg({element}, ',' ORDER BY {order}) FROM {rows}), '')"


def key_name(alias: str) -> str:
    return f"""'{{"key":' || to_json({alias}.key)::text || ',"name":' || to_json({alias}.name)::text || '}}'"""


def products_of(link: str, owner: str, limit: int) -> str:
    """The first ``limit`` live products linked to ``owner`` through ``link``
    (initiative_products.initiative_id, constraint_products.constraint_id), with key
    and name."""
    table, column = link.split(".")
    rows = f"""(SELECT p.* FROM products p JOIN {table} l ON l.product_id = p.id
      WHERE l.{column} = {owner} AND p.archived_at IS NULL
      ORDER BY p.key, p.id LIMIT {limit}) p"""
    return nodes(key_name("p"), rows, "p.key, p.id")


def constraints_of_initiative(owner: str, limit: int) -> str:
    """The first ``limit`` live constraints of initiative ``owner``: key severity status."""
    element = """'{"key":' || to_json(c.key)::text || ',"severity":' || to_json(c.severity)::text
      || ',"status":' || to_json(c.status)::text || '}'"""
    rows = f"""(SELECT c.* FROM technical_constraints c
      JOIN constraint_initiatives ci ON ci.constraint_id = c.id
      WHERE ci.initiative_id = {owner} AND c.archived_at IS NULL
      ORDER BY c.key, c.id LIMIT {limit}) c"""
    return nodes(element, rows, "c.key, c.id")


# --- overview, node, series ----------------------------------------------------------

LIMIT_OVERVIEW = f"""
SELECT '{{"data":{{"products":{{"nodes":[' || coalesce((
  SELECT string_agg(
    '{{"key":' || to_json(p.key)::text || ',"name":' || to_json(p.name)::text
    || ',"initiatives":{{"nodes":[' || coalesce((
      SELECT string_agg(
        '{{"key":' || to_json(i.key)::text || ',"title":' || to_json(i.title)::text
        || ',"status":' || to_json(i.status)::text
        || ',"riceScore":'
        || coalesce(graphql_float(round((i.reach * i.impact * i.confidence)::numeric / i.effort,
                                        2)::float8)::text, 'null')
        || ',"isBlocked":' || ({IS_BLOCKED})::text || '}}',
        ',' ORDER BY i.key, i.id)
      FROM (SELECT i.* FROM initiatives i
            JOIN initiative_products ip ON ip.initiative_id = i.id
            WHERE ip.product_id = p.id AND i.archived_at IS NULL
            ORDER BY i.key, i.id LIMIT 10) i
    ), '') || ']}},"kpis":{{"nodes":[' || coalesce((
      SELECT string_agg(
        '{{"key":' || to_json(k.key)::text
        || ',"latestValue":' || coalesce(graphql_float(m.value)::text, 'null')
        || ',"status":"' || {KPI_STATUS} || '"}}',
        ',' ORDER BY k.key, k.id)
      FROM (SELECT k.* FROM kpis k WHERE k.product_id = p.id AND k.archived_at IS NULL
            ORDER BY k.key, k.id LIMIT 20) k
      LEFT JOIN LATERAL ({LATEST_MEASUREMENT}) m ON true
    ), '') || ']}}}}',
    ',' ORDER BY p.key, p.id)
  FROM (SELECT p.* FROM products p
        WHERE p.archived_at IS NULL AND ($1::text[] IS NULL OR p.key = ANY($1::text[]))
        ORDER BY p.key, p.id LIMIT 50) p
), '') || ']}}}}}}'
"""

LIMIT_NODE = f"""
SELECT '{{"data":{{"node":' || coalesce((
  SELECT '{{"key":' || to_json(i.key)::text || ',"title":' || to_json(i.title)::text
    || ',"products":{{"nodes":[' || {products_of("initiative_products.initiative_id", "i.id", 20)}
    || ']}},"constraints":{{"nodes":[' || {constraints_of_initiative("i.id", 20)} || ']}}}}'
  FROM initiatives i WHERE i.id = $1 AND i.archived_at IS NULL
), 'null') || '}}}}'
"""

LIMIT_SERIES = f"""
SELECT '{{"data":{{"kpis":{{"nodes":[' || coalesce((
  SELECT string_agg('{{"key":' || to_json(k.key)::text || ',"series":[' || {WEEKLY_SERIES}
                    || ']}}', ',' ORDER BY k.key, k.id)
  FROM (SELECT k.* FROM kpis k WHERE k.archived_at IS NULL AND k.key = ANY($1::text[])
        ORDER BY k.key, k.id LIMIT 20) k
), '') || ']}}}}}}'
"""

# --- pagination: a page of initiatives by key, forward or backward ------------------

# $1 first, $2 after, $3 last, $4 before (Relay). A cursor is base64url without padding
# of ["KEY",key,id] (domain.services.pagination.encode_cursor): read here from its text,
# written below. A page fetches one row past its size, to tell whether there are more.
_CURSOR_TEXT = """'"' || rtrim(translate(encode(convert_to(
  '["KEY",' || to_json(i.key)::text || ',' || i.id || ']', 'UTF8'), 'base64'), E'+/\\n', '-_'),
  '=') || '"'"""

_PAGE_NODE = f"""'{{"key":' || to_json(i.key)::text || ',"title":' || to_json(i.title)::text
  || ',"status":' || to_json(i.status)::text
  || ',"ownerTeam":' || coalesce((SELECT {key_name("t")} FROM teams t
                                  WHERE t.id = i.owner_team_id AND t.archived_at IS NULL), 'null')
  || ',"products":{{"nodes":[' || {products_of("initiative_products.initiative_id", "i.id", 5)}
  || ']}},"constraints":{{"nodes":[' || {constraints_of_initiative("i.id", 5)} || ']}}}}'"""


def _page_rows(comparison: str, cursor: str, direction: str, size: str, when: str) -> str:
    """One direction's rows past the cursor (``comparison``), numbered from it."""
    return f"""(SELECT i.id, i.key, i.title, i.status, i.owner_team_id,
          row_number() OVER (ORDER BY i.key {direction}, i.id {direction}) AS rn
   FROM initiatives i, cursor c
   WHERE {when} AND i.archived_at IS NULL
     AND ({cursor} IS NULL OR (i.key, i.id) {comparison} (c.key, c.id))
   ORDER BY i.key {direction}, i.id {direction} LIMIT {size} + 1)"""


def _beyond(comparison: str) -> str:
    """Whether any live initiative lies on ``comparison``'s side of the cursor."""
    return f"""EXISTS (SELECT 1 FROM initiatives i, cursor c
      WHERE i.archived_at IS NULL AND (i.key, i.id) {comparison} (c.key, c.id))"""


LIMIT_PAGINATION = f"""
WITH cursor AS (
  SELECT d.c ->> 1 AS key, (d.c ->> 2)::bigint AS id
  FROM (SELECT convert_from(decode(
          translate(coalesce($2::text, $4::text), '-_', '+/')
          || repeat('=', (4 - length(coalesce($2::text, $4::text)) % 4) % 4),
          'base64'), 'UTF8')::jsonb AS c) d
), fetched AS (
  {_page_rows(">", "$2::text", "ASC", "$1::int", "$3::int IS NULL")}
  UNION ALL
  {_page_rows("<", "$4::text", "DESC", "$3::int", "$3::int IS NOT NULL")}
), page AS (
  SELECT i.*, i.rn <= coalesce($3::int, $1::int) AS shown, {_CURSOR_TEXT} AS cursor_text
  FROM fetched i
)
SELECT '{{"data":{{"initiatives":{{"pageInfo":{{"hasNextPage":' || (CASE
    WHEN $3::int IS NULL THEN count(*) > $1::int
    ELSE $4::text IS NOT NULL AND {_beyond(">=")} END)::text
  || ',"hasPreviousPage":' || (CASE
    WHEN $3::int IS NULL THEN $2::text IS NOT NULL AND {_beyond("<=")}
    ELSE count(*) > $3::int END)::text
  || ',"startCursor":' || coalesce(
    (array_agg(i.cursor_text ORDER BY i.key, i.id) FILTER (WHERE i.shown))[1], 'null')
  || ',"endCursor":' || coalesce(
    (array_agg(i.cursor_text ORDER BY i.key DESC, i.id DESC) FILTER (WHERE i.shown))[1], 'null')
  || '}},"edges":[' || coalesce(string_agg(
    '{{"cursor":' || i.cursor_text || ',"node":' || {_PAGE_NODE} || '}}',
    ',' ORDER BY i.key, i.id) FILTER (WHERE i.shown), '')
  || ']}}}}}}'
FROM page i
"""

# --- dashboard: a product's KPIs with trend, last measurements and weekly series ----

# $1 the product's key, [$2, $3) the series' window. The trend compares the averages of
# the 30 days up to the latest measurement (``m``) and of the 30 days before them.
_TREND = """'{"currentAverage":'
  || coalesce(graphql_float(round(t.current::numeric, 4)::float8)::text, 'null')
  || ',"previousAverage":'
  || coalesce(graphql_float(round(t.previous::numeric, 4)::float8)::text, 'null')
  || ',"changePercent":' || coalesce(graphql_float(CASE WHEN t.previous <> 0 THEN
       round(((t.current - t.previous) / abs(t.previous))::numeric * 100, 2)::float8 END)::text,
       'null')
  || ',"direction":"' || CASE
       WHEN t.current IS NULL OR t.previous IS NULL THEN 'NO_DATA'
       WHEN abs(t.current - t.previous)
            / CASE WHEN t.previous <> 0 THEN abs(t.previous) ELSE 1 END < 0.01 THEN 'STABLE'
       WHEN CASE WHEN k.direction = 'HIGHER_IS_BETTER' THEN t.current > t.previous
                 ELSE t.current < t.previous END THEN 'IMPROVING'
       ELSE 'WORSENING' END || '"}'"""

_TREND_AVERAGES = """
SELECT avg(x.value) FILTER (WHERE x.observed_at > m.observed_at - interval '30 days') AS current,
       avg(x.value) FILTER (WHERE x.observed_at <= m.observed_at - interval '30 days') AS previous
FROM kpi_measurements x
WHERE x.kpi_id = k.id AND x.observed_at > m.observed_at - interval '60 days'"""

_LAST_MEASUREMENTS = nodes(
    f"""'{{"observedAt":' || {iso_instant("x.observed_at")}
      || ',"value":' || graphql_float(x.value)::text || '}}'""",
    """(SELECT x.* FROM kpi_measurements x WHERE x.kpi_id = k.id
      ORDER BY x.observed_at DESC, x.id DESC LIMIT 10) x""",
    "x.observed_at, x.id",
)

LIMIT_DASHBOARD = f"""
SELECT '{{"data":{{"product":' || coalesce((
  SELECT '{{"key":' || to_json(p.key)::text || ',"name":' || to_json(p.name)::text
    || ',"lifecycleStage":' || to_json(p.lifecycle_stage)::text
    || ',"kpis":{{"totalCount":'
    || (SELECT count(*) FROM kpis k WHERE k.product_id = p.id AND k.archived_at IS NULL)
    || ',"nodes":[' || coalesce((
      SELECT string_agg(
        '{{"key":' || to_json(k.key)::text || ',"name":' || to_json(k.name)::text
        || ',"unit":' || to_json(k.unit)::text
        || ',"target":' || coalesce(graphql_float(k.target)::text, 'null')
        || ',"status":"' || {KPI_STATUS} || '"'
        || ',"latestValue":' || coalesce(graphql_float(m.value)::text, 'null')
        || ',"trend":' || {_TREND}
        || ',"measurements":{{"nodes":[' || {_LAST_MEASUREMENTS}
        || ']}},"series":[' || {WEEKLY_SERIES} || ']}}',
        ',' ORDER BY k.key, k.id)
      FROM (SELECT k.* FROM kpis k WHERE k.product_id = p.id AND k.archived_at IS NULL
            ORDER BY k.key, k.id LIMIT 10) k
      LEFT JOIN LATERAL ({LATEST_MEASUREMENT}) m ON true
      LEFT JOIN LATERAL ({_TREND_AVERAGES}) t ON true
    ), '') || ']}}}}'
  FROM products p WHERE p.key = $1::text AND p.archived_at IS NULL
), 'null') || '}}}}'
"""

# --- board: constraints filtered by enum lists and search text ---------------------

# $1 severities, $2 statuses, $3 categories (null: no filter), $4 the search text: every
# word of it must prefix a word of the constraint's search document, as
# domain.services.filters.search_clause asks.
_BOARD_INITIATIVE = f"""'{{"key":' || to_json(i.key)::text || ',"title":' || to_json(i.title)::text
  || ',"status":' || to_json(i.status)::text || ',"isBlocked":' || ({IS_BLOCKED})::text || '}}'"""

_BOARD_NODE = f"""'{{"key":' || to_json(c.key)::text || ',"title":' || to_json(c.title)::text
  || ',"severity":' || to_json(c.severity)::text || ',"status":' || to_json(c.status)::text
  || ',"category":' || to_json(c.category)::text
  || ',"dueDate":' || coalesce(to_json(c.due_date)::text, 'null')
  || ',"products":{{"nodes":[' || {products_of("constraint_products.constraint_id", "c.id", 5)}
  || ']}},"initiatives":{{"nodes":[' || {
    nodes(
        _BOARD_INITIATIVE,
        '''(
      SELECT i.* FROM initiatives i JOIN constraint_initiatives ci ON ci.initiative_id = i.id
      WHERE ci.constraint_id = c.id AND i.archived_at IS NULL
      ORDER BY i.key, i.id LIMIT 5) i''',
        "i.key, i.id",
    )
} || ']}}}}'"""

LIMIT_BOARD = rf"""
SELECT '{{"data":{{"technicalConstraints":{{"totalCount":' || coalesce(max(c.total), 0)
  || ',"nodes":[' || coalesce(string_agg({_BOARD_NODE}, ',' ORDER BY c.key, c.id), '')
  || ']}}}}}}'
FROM (
  SELECT c.*, count(*) OVER () AS total FROM technical_constraints c
  WHERE c.archived_at IS NULL
    AND ($1::constraint_severity[] IS NULL OR c.severity = ANY($1::constraint_severity[]))
    AND ($2::constraint_status[] IS NULL OR c.status = ANY($2::constraint_status[]))
    AND ($3::constraint_category[] IS NULL OR c.category = ANY($3::constraint_category[]))
    AND ($4::text IS NULL OR c.search_document @@ to_tsquery('simple', (
      SELECT string_agg(w[1] || ':*', ' & ') FROM regexp_matches(lower($4::text), '\w+', 'g') w)))
  ORDER BY c.key, c.id LIMIT 50
) c
"""

# The limit of each client workload: its arguments from our request's variables, which
# are the pick the limit's requests carry.
CLIENT_LIMITS = {
    "pagination": Limit(
        LIMIT_PAGINATION, lambda v: (v.get("first"), v.get("after"), v.get("last"), v.get("before"))
    ),
    "dashboard": Limit(
        LIMIT_DASHBOARD,
        lambda v: (v["key"], datetime.fromisoformat(v["from"]), datetime.fromisoformat(v["to"])),
    ),
    "board": Limit(
        LIMIT_BOARD, lambda v: (v["severities"], v["statuses"], v["categories"], v["search"])
    ),
}
