"""Documents, from their text to a validated operation: refused by size before they are
parsed, charged to the caller's budget when they are, and kept parsed and validated in
one cache bounded by bytes.

Parsing is the one step a caller pays before any limit can look at the document: a
unique 4.8 MB comment took 0.3 s to parse and stayed in memory as a cache key. So:

- an ad-hoc document larger than ``max_document_bytes`` is refused on its length alone
  (a persisted one, registered ahead, may be larger: ``Context.persisted_document``);
- a document parsed (not found in the cache) costs its caller one point per
  ``PARSE_BYTES_PER_POINT`` bytes, anonymous callers included, before it is parsed;
- the parsed document, its validation errors and its size refusal are kept in
  ``DOCUMENTS``, bounded by what they hold in memory (the text, a copy of it, and ~700
  bytes per token of syntax tree), so eviction drops all three at once.

A document with several operations and no ``operationName`` is refused after
validation, as the GraphQL specification asks (strawberry would run the first).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Hashable, Iterator
from typing import Any

from graphql import (
    DeferStreamDirectiveLabel,
    DeferStreamDirectiveOnRootField,
    DeferStreamDirectiveOnValidOperationsRule,
    DocumentNode,
    FragmentDefinitionNode,
    FragmentsOnCompositeTypesRule,
    GraphQLError,
    KnownDirectivesRule,
    KnownFragmentNamesRule,
    NoFragmentCyclesRule,
    NoUndefinedVariablesRule,
    NoUnusedFragmentsRule,
    NoUnusedVariablesRule,
    OperationDefinitionNode,
    PossibleFragmentSpreadsRule,
    StreamDirectiveOnListField,
    UniqueDirectivesPerLocationRule,
    UniqueFragmentNamesRule,
    UniqueVariableNamesRule,
    VariablesAreInputTypesRule,
    VariablesInAllowedPositionRule,
    parse,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from domain.caches import ByteLRU, text_bytes
from schema.compiled.selection import parsed_bytes
from schema.limits.size import size_refusal

PARSE_BYTES_PER_POINT = 100
DOCUMENT_CACHE_BYTES = 64 * 1024 * 1024

DOCUMENT_TOO_LARGE = "DOCUMENT_TOO_LARGE"
OPERATION_NAME_REQUIRED = "OPERATION_NAME_REQUIRED"
_UNSET: Any = object()

# GraphQL's rules that look only at variables, directives or fragments: a document
# without any of these cannot break them, so they are not run on it (the errors are the
# same; tests/test_validation_rules.py). Variables and their definitions are written
# with a ``$``, directives with an ``@``, fragment spreads and inline fragments with
# ``...``, fragment definitions are a definition of their own. The rules about
# variables walk the whole operation a second time (the types of the variables' uses):
# a third of validating a document without variables.
VARIABLE_RULES = frozenset(
    {
        NoUndefinedVariablesRule,
        NoUnusedVariablesRule,
        UniqueVariableNamesRule,
        VariablesAreInputTypesRule,
        VariablesInAllowedPositionRule,
    }
)
DIRECTIVE_RULES = frozenset(
    {
        KnownDirectivesRule,
        UniqueDirectivesPerLocationRule,
        DeferStreamDirectiveOnRootField,
        DeferStreamDirectiveOnValidOperationsRule,
        DeferStreamDirectiveLabel,
        StreamDirectiveOnListField,
    }
)
FRAGMENT_RULES = frozenset(
    {
        UniqueFragmentNamesRule,
        KnownFragmentNamesRule,
        NoUnusedFragmentsRule,
        PossibleFragmentSpreadsRule,
        NoFragmentCyclesRule,
        FragmentsOnCompositeTypesRule,
    }
)


def unneeded_rules(query: str, document: DocumentNode) -> frozenset[Any]:
    """The rules above that cannot find an error in this document."""
    unneeded: frozenset[Any] = frozenset()
    if "$" not in query:  # anywhere, strings and comments included
        unneeded |= VARIABLE_RULES
    if "@" not in query:
        unneeded |= DIRECTIVE_RULES
    if "..." not in query and not any(
        isinstance(definition, FragmentDefinitionNode) for definition in document.definitions
    ):
        unneeded |= FRAGMENT_RULES
    return _SHARED.setdefault(unneeded, unneeded)  # one set per combination, not per entry


_SHARED: dict[frozenset[Any], frozenset[Any]] = {}


class DocumentEntry:
    """A parsed document and what is derived from the document alone."""

    __slots__ = ("document", "operations", "refusal", "size", "unneeded", "validations")

    def __init__(self, query: str, document: DocumentNode) -> None:
        self.document = document
        self.unneeded = unneeded_rules(query, document)
        self.operations = sum(
            isinstance(definition, OperationDefinitionNode) for definition in document.definitions
        )
        self.size = parsed_bytes(query, document)
        # Validation errors by (schema, rules): each schema variant validates apart.
        self.validations: dict[Hashable, list[GraphQLError]] = {}
        self.refusal: GraphQLError | None = _UNSET


DOCUMENTS: ByteLRU[tuple[str, Hashable], DocumentEntry] = ByteLRU(DOCUMENT_CACHE_BYTES)


def document_key(query: str, parse_options: Any) -> tuple[str, Hashable]:
    """The key of a document in ``DOCUMENTS``: its text and the options it is parsed with."""
    return (query, tuple(sorted(parse_options.items())))


def document_bytes(query: str) -> int:
    """The document's size in UTF-8 bytes (ASCII text is not encoded to be measured)."""
    return len(query) if query.isascii() else len(query.encode("utf-8", "surrogatepass"))


def parse_points(size: int) -> int:
    return max(1, -(-size // PARSE_BYTES_PER_POINT))


def _error(message: str, code: str, **extensions: Any) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **extensions})


class Documents(SchemaExtension):
    """Parsing and validation, refused, charged and cached as the module says."""

    def __init__(self) -> None:
        self.entry: DocumentEntry | None = None
        self.key: tuple[str, Hashable] | None = None

    async def on_parse(self) -> AsyncIterator[None]:
        execution = self.execution_context
        query = execution.query
        if isinstance(query, str) and execution.graphql_document is None:
            # Raised before yielding: strawberry answers the error as a request error.
            self.entry = await self._parsed(query)
            execution.graphql_document = self.entry.document
        yield

    async def _parsed(self, query: str) -> DocumentEntry:
        execution = self.execution_context
        context = execution.context
        size = document_bytes(query)
        settings = getattr(context, "settings", None)
        limit = getattr(settings, "max_document_bytes", None)
        if limit is not None and size > limit and not getattr(context, "persisted_document", False):
            raise _error(
                f"This document is {size} bytes; the limit is {limit}. Register larger "
                "documents as persisted queries.",
                DOCUMENT_TOO_LARGE,
                size=size,
                limit=limit,
            )
        key = self.key = document_key(query, execution.parse_options)
        entry = DOCUMENTS.get(key)
        if entry is not None:
            return entry
        await _charge(context, size)
        entry = DocumentEntry(query, parse(query, **execution.parse_options))
        DOCUMENTS.put(key, entry, entry.size)
        return entry

    def on_validate(self) -> Iterator[None]:
        execution = self.execution_context
        entry = self.entry
        if entry is None:  # the document came from elsewhere: validated as strawberry does
            yield
            return
        if entry.refusal is _UNSET:
            entry.refusal = size_refusal(entry.document)
        if entry.refusal is not None:
            errors = [entry.refusal]
        else:
            rules = (execution.schema._schema, execution.validation_rules)
            found = entry.validations.get(rules)
            if found is None:
                found = entry.validations[rules] = validate_document(
                    execution.schema._schema,
                    entry.document,
                    rules_for(entry, execution.validation_rules),
                )
                # Messages quote the document's names: counted, so the bound holds.
                entry.size += sum(text_bytes(error.message) + 500 for error in found)
                if self.key is not None and DOCUMENTS.peek(self.key) is entry:
                    DOCUMENTS.resize(self.key, entry.size)
            errors = found
        if not errors and entry.operations > 1 and _provided_name(execution) is None:
            errors = [
                _error(
                    "Must provide operation name if query contains multiple operations.",
                    OPERATION_NAME_REQUIRED,
                )
            ]
        execution.pre_execution_errors = errors
        yield


def rules_for(entry: DocumentEntry, rules: tuple[Any, ...]) -> tuple[Any, ...]:
    """The rules that can find an error in the document (``unneeded_rules``)."""
    if not entry.unneeded:
        return rules
    return tuple(rule for rule in rules if rule not in entry.unneeded)


def _provided_name(execution: Any) -> str | None:
    # strawberry's ``operation_name`` falls back to the first operation's name.
    return getattr(execution, "_provided_operation_name", execution.operation_name)


async def _charge(context: Any, size: int) -> None:
    """Parsing costs the caller points in proportion to the document's size."""
    limiter = getattr(context, "rate_limiter", None)
    if limiter is None:
        return
    points = parse_points(size)
    budget = await limiter.charge(context.rate_limit_key, points)
    if budget.allowed:
        return
    response = getattr(context, "response", None)
    if response is not None:
        response.status_code = 429
        response.headers["Retry-After"] = str(budget.retry_after)
    raise _error(
        f"Rate limit exceeded: {budget.remaining} of {budget.limit} points left in this "
        f"window and parsing this {size}-byte document costs {points}. Retry after "
        f"{budget.retry_after} seconds.",
        "RATE_LIMITED",
        retryAfter=budget.retry_after,
    )
