"""``python -m bench floor``: how much of the resolver path's CPU is graphql-core's own.

For each workload document (its fixed variant), CPU time (``time.process_time``: the
machine is shared, wall clock would measure the neighbours) per execution of:

- **graphql-core alone**: ``graphql.execute`` of the same document, parsed and validated
  once, over plain dicts and lists of our real answer's shape and size, with the default
  resolvers, against a schema built from schema.graphql (``graphql.build_schema``);
- **the resolvers**: strawberry over our schema with the compiled path off (as with
  ``PORTFOLIO_COMPILED_READS=false``), in-process against the bench database, the session
  and its transaction included (no HTTP);
- **the compiled path**, the same way, for reference.

graphql-core's executor is the floor under any resolver path built on it: no data
fetching, no strawberry, no SQLAlchemy; what is left is per-field execution itself.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    NamedTypeNode,
    OperationDefinitionNode,
    SelectionSetNode,
    build_schema,
    execute,
    is_abstract_type,
    parse,
    validate,
)

from bench import database
from bench.processes import BenchError
from bench.workloads import ReadPlan

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
LOG_DIR = BENCH_DIR / "results" / "tmp"
FLOOR_WORKLOADS = ("overview", "pagination", "dashboard", "board")


@dataclass(frozen=True)
class Floor:
    """One workload's CPU ms per execution on each path (medians of ``repeat`` runs;
    graphql-core alone, cheap, of ten times as many)."""

    workload: str
    fields: int  # field values in the answer (keys of all its objects)
    answer_bytes: int
    graphql_core_ms: float
    graphql_core_parse_validate_ms: float  # parsing and validating the document, once
    resolvers_ms: float
    compiled_ms: float
    resolvers_answered_by: str
    compiled_answered_by: str

    @property
    def graphql_core_us_per_field(self) -> float:
        return self.graphql_core_ms * 1000 / self.fields


# --- the root value: the answer turned into what default resolvers walk ------------------


def root_value(schema: GraphQLSchema, document: DocumentNode, answer: dict[str, Any]) -> Any:
    """The answer keyed by field name instead of response key (aliases of one field are
    merged), enums as their internal values, ``__typename`` kept where the type is
    abstract: graphql-core's default resolvers over it give the answer back."""
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    root = schema.get_root_type(operation.operation)
    if root is None:
        raise BenchError(f"the schema has no {operation.operation.value} type")
    return _object(schema, fragments, root, operation.selection_set, answer)


def _fields(
    schema: GraphQLSchema,
    fragments: dict[str, FragmentDefinitionNode],
    parent: GraphQLObjectType,
    selections: SelectionSetNode,
) -> Iterator[FieldNode]:
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            yield selection
            continue
        if isinstance(selection, FragmentSpreadNode):
            fragment = fragments[selection.name.value]
            condition: NamedTypeNode | None = fragment.type_condition
            inner = fragment.selection_set
        elif isinstance(selection, InlineFragmentNode):
            condition, inner = selection.type_condition, selection.selection_set
        else:
            continue
        applies_to = schema.get_type(condition.name.value) if condition else parent
        if applies_to is not parent and not (
            is_abstract_type(applies_to) and schema.is_sub_type(applies_to, parent)
        ):
            continue
        yield from _fields(schema, fragments, parent, inner)


def _object(
    schema: GraphQLSchema,
    fragments: dict[str, FragmentDefinitionNode],
    parent: GraphQLObjectType,
    selections: SelectionSetNode,
    answer: dict[str, Any],
) -> dict[str, Any]:
    shaped: dict[str, Any] = {}
    for node in _fields(schema, fragments, parent, selections):
        name = node.name.value
        key = node.alias.value if node.alias else name
        if name.startswith("__") or key not in answer:
            continue
        value = _value(schema, fragments, parent.fields[name].type, node, answer[key])
        shaped[name] = _merged(shaped[name], value, name) if name in shaped else value
    return shaped


def _value(
    schema: GraphQLSchema,
    fragments: dict[str, FragmentDefinitionNode],
    of_type: Any,
    node: FieldNode,
    value: Any,
) -> Any:
    if value is None:
        return None
    if isinstance(of_type, GraphQLNonNull):
        return _value(schema, fragments, of_type.of_type, node, value)
    if isinstance(of_type, GraphQLList):
        return [_value(schema, fragments, of_type.of_type, node, item) for item in value]
    if isinstance(of_type, GraphQLEnumType):
        return of_type.values[value].value
    if node.selection_set is None:
        return value  # a scalar: build_schema's custom scalars serialize as they are
    concrete = of_type
    if is_abstract_type(of_type):
        typename = value.get("__typename")
        if not isinstance(typename, str):
            raise BenchError(f"{node.name.value}: select __typename on abstract types")
        concrete = schema.get_type(typename)
    shaped = _object(schema, fragments, concrete, node.selection_set, value)
    if concrete is not of_type:
        shaped["__typename"] = concrete.name
    return shaped


def _merged(first: Any, second: Any, name: str) -> Any:
    """Two aliases of one field: their selections merged, or the same value."""
    if isinstance(first, dict) and isinstance(second, dict):
        both = dict(first)
        for key, value in second.items():
            both[key] = _merged(both[key], value, key) if key in both else value
        return both
    if isinstance(first, list) and isinstance(second, list) and len(first) == len(second):
        return [_merged(a, b, name) for a, b in zip(first, second, strict=True)]
    if first != second:
        raise BenchError(f"aliases of {name} answer differently: use one alias per field")
    return first


def field_count(answer: Any) -> int:
    """Field values in an answer: every key of every object, nested ones included."""
    if isinstance(answer, dict):
        return len(answer) + sum(field_count(v) for v in answer.values())
    if isinstance(answer, list):
        return sum(field_count(v) for v in answer)
    return 0


# --- measuring ----------------------------------------------------------------------------


def cpu_ms(run: Callable[[], Any], repeat: int, warmup: int) -> float:
    """Median CPU ms of a synchronous call (the median: other processes on a shared
    machine slow some executions down, CPU time included)."""
    for _ in range(warmup):
        run()
    timings = []
    for _ in range(repeat):
        start = time.process_time()
        run()
        timings.append((time.process_time() - start) * 1000)
    return statistics.median(timings)


async def cpu_ms_async(run: Callable[[], Awaitable[Any]], repeat: int, warmup: int) -> float:
    """Median CPU ms of a coroutine; the process's CPU, so the driver's work counts too
    (PostgreSQL's does not: another process)."""
    for _ in range(warmup):
        await run()
    timings = []
    for _ in range(repeat):
        start = time.process_time()
        await run()
        timings.append((time.process_time() - start) * 1000)
    return statistics.median(timings)


def _plans(dataset: database.Dataset, workloads: list[str], schema_text: str) -> list[ReadPlan]:
    from bench.clients import client_plans
    from bench.workloads import READ_WORKLOADS, read_plans

    plans = []
    for workload in workloads:
        found = (
            read_plans(dataset, [workload])
            if workload in READ_WORKLOADS
            else client_plans(dataset, workload, schema_text)
        )
        plans.append(next(p for p in found if p.variant == "fixed"))
    return plans


async def measure(url: str, workloads: list[str], repeat: int, warmup: int) -> list[Floor]:
    """Every workload on the three paths, against the database at ``url``."""
    from bench.inprocess import _context_factory, _schema
    from bench.runner import OURS_ENVIRONMENT

    os.environ.update(OURS_ENVIRONMENT | {"DATABASE_URL": url})
    from api.embedded import resolve_database_url
    from domain.database import create_engine, create_session_factory
    from domain.settings import Settings

    settings = Settings()
    schema = _schema(settings)
    schema_text = (REPO_DIR / "schema.graphql").read_text()
    core_schema = build_schema(schema_text)
    dataset = await database.load_dataset(url)
    engine = create_engine(resolve_database_url(settings), settings)
    sessions = create_session_factory(engine)
    contexts = {
        "resolvers": _context_factory(settings.model_copy(update={"compiled_reads": False})),
        "compiled": _context_factory(settings.model_copy(update={"compiled_reads": True})),
    }
    floors = []
    try:
        for plan in _plans(dataset, workloads, schema_text):
            request = orjson.loads(plan.body("ours", []))
            query, variables = request["query"], request["variables"]
            measured = {
                path: await _ours(schema, sessions, new_context, query, variables, repeat, warmup)
                for path, new_context in contexts.items()
            }
            (resolvers_ms, answer, resolvers_by) = measured["resolvers"]
            (compiled_ms, compiled_answer, compiled_by) = measured["compiled"]
            if answer != compiled_answer:
                raise BenchError(f"{plan.workload}: the two paths answer differently")
            core_ms, parse_validate_ms = _graphql_core(
                core_schema, query, variables, answer, repeat * 10, warmup
            )
            floors.append(
                Floor(
                    workload=plan.workload,
                    fields=field_count(answer),
                    answer_bytes=len(orjson.dumps(answer)),
                    graphql_core_ms=core_ms,
                    graphql_core_parse_validate_ms=parse_validate_ms,
                    resolvers_ms=resolvers_ms,
                    compiled_ms=compiled_ms,
                    resolvers_answered_by=resolvers_by,
                    compiled_answered_by=compiled_by,
                )
            )
    finally:
        await engine.dispose()
    return floors


async def _ours(
    schema: Any,
    sessions: Any,
    new_context: Callable[[Any], Any],
    query: str,
    variables: dict[str, Any],
    repeat: int,
    warmup: int,
) -> tuple[float, Any, str]:
    """CPU ms of ``schema.execute`` in a session and transaction, the answer (as JSON
    values) and the path that gave it."""
    answer: Any = None
    answered_by = ""

    async def once() -> None:
        nonlocal answer, answered_by
        async with sessions() as session, session.begin():
            context = new_context(session)
            result = await schema.execute(query, variable_values=variables, context_value=context)
        if result.errors:
            raise BenchError(f"the query failed: {result.errors[0]}")
        answer = orjson.loads(orjson.dumps(result.data))
        answered_by = getattr(context, "answered_by", "") or "resolvers"

    cpu = await cpu_ms_async(once, repeat, warmup)
    return cpu, answer, answered_by


def _graphql_core(
    schema: GraphQLSchema,
    query: str,
    variables: dict[str, Any],
    answer: Any,
    repeat: int,
    warmup: int,
) -> tuple[float, float]:
    """CPU ms of graphql-core executing the document over the answer as plain values, and
    of parsing and validating it; checks that the execution gives the answer back."""
    document = parse(query)
    errors = validate(schema, document)
    if errors:
        raise BenchError(f"graphql-core refuses the document: {errors[0]}")
    root = root_value(schema, document, answer)

    def core() -> Any:
        return execute(schema, document, root_value=root, variable_values=variables)

    check: Any = core()
    if check.errors or orjson.loads(orjson.dumps(check.data)) != answer:
        raise BenchError("graphql-core over the answer did not give the answer back")
    return (
        cpu_ms(core, repeat, warmup),
        cpu_ms(lambda: validate(schema, parse(query)), repeat, warmup),
    )


def table(floors: list[Floor]) -> str:
    lines = [
        "| workload | fields in the answer | (a) graphql-core alone, ms CPU | (a) µs per field "
        "| (b) resolvers, ms CPU | (c) compiled, ms CPU | (b) ÷ (a) "
        "| parse + validate, ms CPU |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for f in floors:
        lines.append(
            f"| {f.workload} | {f.fields:,} | {f.graphql_core_ms:.2f} "
            f"| {f.graphql_core_us_per_field:.1f} | {f.resolvers_ms:.2f} | {f.compiled_ms:.2f} "
            f"| {f.resolvers_ms / f.graphql_core_ms:.1f}× "
            f"| {f.graphql_core_parse_validate_ms:.2f} |"
        )
    return "\n".join(lines)


def run_floor(
    products: int, repeat: int, warmup: int, workloads: list[str], results_dir: Path
) -> Path:
    started = datetime.now(UTC)

    url = asyncio.run(database.ensure_database(products, fresh=False, log_dir=LOG_DIR))
    floors = asyncio.run(measure(url, workloads, repeat, warmup))
    text = (
        f"# The resolver path's floor, {started.strftime('%Y-%m-%d %H:%M UTC')}\n\n"
        f"{products} products, the fixed variant of each workload, {repeat} timed executions "
        f"after {warmup} untimed ({repeat * 10} for graphql-core alone), median CPU ms per "
        "execution (`time.process_time`). (a): graphql-core's `execute` over the answer as "
        "plain dicts (document parsed and validated once, that cost in the last column); "
        "(b): strawberry, compiled path off; (c): compiled path; (b) and (c) through "
        "`schema.execute` with a session and transaction, no HTTP.\n\n" + table(floors) + "\n"
    )
    out = results_dir / f"{started.strftime('%Y%m%dT%H%M%SZ')}-floor"
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(text)
    document = {
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "products": products,
        "repeat": repeat,
        "warmup": warmup,
        "floors": [asdict(f) for f in floors],
    }
    (out / "results.json").write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    print(text)
    print(f"results: {out}")
    return out
