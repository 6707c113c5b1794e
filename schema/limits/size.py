"""Documents too large to validate: fragments that expand to more fields than any real
query selects, or too many directives, are refused before validation walks them."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Visitor,
    visit,
)
from strawberry.extensions import ValidationCache

MAX_EXPANDED_FIELDS = 2000
MAX_DIRECTIVES = 50


def directive_count(document: DocumentNode) -> int:
    """Directives written in the document (skip/include and unknown ones alike)."""
    count = 0

    class Counter(Visitor):
        def enter_directive(self, *_: Any) -> None:
            nonlocal count
            count += 1

    visit(document, Counter())
    return count


def expanded_fields(document: DocumentNode) -> int:
    """How many fields the largest operation selects once every fragment is spread in
    place: linear in the document's size (each fragment is measured once), although
    the expansion itself may be exponential (fragments spreading others twice)."""
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    sizes: dict[str, int] = {}

    def size(selection_set: SelectionSetNode | None) -> int:
        total = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                total += 1 + size(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                total += size(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name not in sizes:
                    sizes[name] = 0  # a cycle counts nothing here; validation reports it
                    fragment = fragments.get(name)
                    sizes[name] = size(fragment.selection_set) if fragment else 0
                total += sizes[name]
        return total

    return max(
        (
            size(definition.selection_set)
            for definition in document.definitions
            if isinstance(definition, OperationDefinitionNode)
        ),
        default=0,
    )


class BoundedValidationCache(ValidationCache):
    """Validation (cached), refused at once for a document whose fragments expand to
    more fields than any real query selects: validation and the limits walk the
    expansion, so a few hundred bytes of nested spreads would cost minutes of CPU."""

    def on_validate(self) -> Iterator[None]:
        execution = self.execution_context
        document = execution.graphql_document
        refusal = _size_refusal(document) if document is not None else None
        if refusal is None:
            yield from super().on_validate()
            return
        execution.pre_execution_errors = [refusal]
        yield


@lru_cache(maxsize=1024)  # by document, as the validation cache: once per document
def _size_refusal(document: DocumentNode) -> GraphQLError | None:
    fields = expanded_fields(document)
    if fields > MAX_EXPANDED_FIELDS:
        return GraphQLError(
            f"This document selects {fields} fields once its fragments are spread; "
            f"the limit is {MAX_EXPANDED_FIELDS}.",
            extensions={"code": "QUERY_TOO_LARGE", "limit": MAX_EXPANDED_FIELDS},
        )
    directives = directive_count(document)
    if directives > MAX_DIRECTIVES:
        return GraphQLError(
            f"This document uses {directives} directives; the limit is {MAX_DIRECTIVES}.",
            extensions={"code": "QUERY_TOO_LARGE", "limit": MAX_DIRECTIVES},
        )
    return None
