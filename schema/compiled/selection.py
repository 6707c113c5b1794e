"""Walking a validated GraphQL document: fields per response key, fragments flattened."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLSchema,
    InlineFragmentNode,
    SelectionSetNode,
    get_argument_values,
)
from graphql.execution.values import VariableValues, get_directive_values
from graphql.type import GraphQLIncludeDirective, GraphQLSkipDirective

from domain.caches import text_bytes


class Unsupported(Exception):
    """The compiler does not cover this shape; the resolvers will answer instead."""


class Invalid(Unsupported):
    """Arguments the resolvers refuse: they answer, with their error. Unlike a shape the
    compiler does not cover, other values of a parameter may well be valid."""


@dataclass
class Walk:
    """What the compiler needs from the request besides the schema."""

    schema: GraphQLSchema
    fragments: dict[str, FragmentDefinitionNode]
    variables: VariableValues
    # The cost walk is permissive: it counts a field selected twice twice and ignores
    # directives it does not know, so that any valid document has a cost.
    strict: bool = True

    def fields(self, type_name: str, selection_set: SelectionSetNode | None) -> list[FieldNode]:
        """Fields selected on an object of ``type_name``, fragments included, in order."""
        if selection_set is None:
            return []
        found: list[FieldNode] = []
        keys: set[str] = set()
        self._collect(type_name, selection_set, found, keys)
        return found

    def _collect(
        self,
        type_name: str,
        selection_set: SelectionSetNode,
        found: list[FieldNode],
        keys: set[str],
    ) -> None:
        for selection in selection_set.selections:
            if not self._included(selection):
                continue
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                if key in keys and self.strict:
                    raise Unsupported("a response key selected twice")
                keys.add(key)
                found.append(selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                if condition is None or self._applies(condition.name.value, type_name):
                    self._collect(type_name, selection.selection_set, found, keys)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments[selection.name.value]
                if self._applies(fragment.type_condition.name.value, type_name):
                    self._collect(type_name, fragment.selection_set, found, keys)

    def _applies(self, condition: str, type_name: str) -> bool:
        if condition == type_name:
            return True
        abstract = self.schema.type_map.get(condition)
        concrete = self.schema.type_map.get(type_name)
        return bool(
            abstract is not None
            and concrete is not None
            and any(i.name == condition for i in getattr(concrete, "interfaces", ()))
        )

    def _included(self, node: Any) -> bool:
        for directive in node.directives or ():
            if directive.name.value not in {"skip", "include"} and self.strict:
                raise Unsupported(f"directive @{directive.name.value}")
        skip = get_directive_values(GraphQLSkipDirective, node, self.variables)
        if skip is not None and skip["if"]:
            return False
        include = get_directive_values(GraphQLIncludeDirective, node, self.variables)
        return not (include is not None and not include["if"])

    def arguments(self, definition: GraphQLField, node: FieldNode) -> dict[str, Any]:
        return get_argument_values(definition, node, self.variables)


# Memory of a parsed document per token (nodes, locations and the linked tokens),
# measured with tracemalloc at 390-700 bytes depending on the document's shape;
# tests/test_document_caps.py checks that the estimate stays above what is held.
BYTES_PER_TOKEN = 700


def parsed_bytes(query: str, document: DocumentNode) -> int:
    """What a parsed document holds in memory, over-estimated: its text, twice (the
    values of its comments and strings are copies of it), and its tokens (comments
    included: the lexer links them too)."""
    tokens = 0
    token = document.loc.start_token if document.loc is not None else None
    while token is not None:
        tokens += 1
        token = token.next
    return 2 * text_bytes(query) + tokens * BYTES_PER_TOKEN


def response_key(node: FieldNode) -> str:
    return node.alias.value if node.alias else node.name.value
