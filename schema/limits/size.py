"""Documents too large to validate: fragments that expand to more fields than any real
query selects, or too many directives, are refused before validation walks them (a few
hundred bytes of nested spreads would otherwise cost minutes of CPU)."""

from __future__ import annotations

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


def size_refusal(document: DocumentNode) -> GraphQLError | None:
    """Why the document is too large to validate, or None. Memoised with the parsed
    document (``schema.limits.documents``): once per document."""
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
