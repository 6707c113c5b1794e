"""Checking a webhook's GraphQL document when it is registered (rendered by
``schema.webhook_payloads``)."""

from __future__ import annotations

from graphql import GraphQLError, GraphQLSchema, OperationType, parse, validate
from graphql.language import NamedTypeNode, NonNullTypeNode, OperationDefinitionNode

from domain.errors import InvalidInput


def check_document(schema: GraphQLSchema, document: str) -> None:
    """InvalidInput unless ``document`` is one valid query taking ``$id: ID!``."""
    try:
        parsed = parse(document)
    except GraphQLError as error:
        raise InvalidInput(f"The query does not parse: {error.message}", field="query") from None
    errors = validate(schema, parsed)
    if errors:
        raise InvalidInput(f"The query is not valid: {errors[0].message}", field="query")
    operations = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or operations[0].operation is not OperationType.QUERY:
        raise InvalidInput("The query must be one query operation.", field="query")
    variables = {v.variable.name.value: v.type for v in operations[0].variable_definitions or ()}
    declared = variables.get("id")
    if (
        set(variables) != {"id"}
        or not isinstance(declared, NonNullTypeNode)
        or not isinstance(declared.type, NamedTypeNode)
        or declared.type.name.value != "ID"
    ):
        raise InvalidInput("The query must take exactly one variable, `$id: ID!`.", field="query")
