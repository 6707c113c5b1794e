"""Every field that returns data declares the scopes it needs, and for every scope a
caller without it is refused on exactly the fields that declare it."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import (
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    ListValueNode,
    StringValueNode,
    build_schema,
    get_named_type,
    is_leaf_type,
    is_non_null_type,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import models as auth_models
from auth.scopes import Scope
from domain import models
from domain.models.base import IdMixin
from schema.ids import encode_id
from schema.sdl import render_sdl
from tests.fixtures.auth import ALL_SCOPES, service_client, user_with_roles

# Fields that return objects without a scope of their own, and why that is safe.
PUBLIC = {
    "Query.viewer": "the caller's own identity",
    "Query.rateLimit": "the caller's own budget",
    "Query.node": "checks the scope of the type it finds",
    "Query.nodes": "checks the scope of each type it finds",
    "Viewer.user": "the caller's own user",
    "Viewer.client": "the caller's own client",
}
NODE_SCOPES = {
    "AuditEvent": "audit:read",
    "User": "admin:users",
    "Role": "admin:users",
    "OAuthClient": "admin:clients",
}
STRUCTURAL_SUFFIXES = ("Connection", "Edge", "Payload")
NODE_MODELS: dict[str, type[IdMixin]] = {
    "Team": models.Team,
    "Product": models.Product,
    "Initiative": models.Initiative,
    "TechnicalConstraint": models.TechnicalConstraint,
    "Kpi": models.Kpi,
    "KpiMeasurement": models.KpiMeasurement,
    "GlossaryTerm": models.GlossaryTerm,
    "AuditEvent": models.AuditEvent,
    "User": auth_models.User,
    "Role": auth_models.Role,
    "OAuthClient": auth_models.OAuthClient,
}


def sdl_schema() -> GraphQLSchema:
    return build_schema(render_sdl())


def required_scopes(field: GraphQLField) -> list[str] | None:
    for directive in (field.ast_node.directives or ()) if field.ast_node else ():
        if directive.name.value == "requiresScopes":
            # @requiresScopes(scopes: [String!]!): one argument, a list of strings.
            assert directive.arguments
            scopes = directive.arguments[0].value
            assert isinstance(scopes, ListValueNode)
            values = []
            for value in scopes.values:
                assert isinstance(value, StringValueNode)
                values.append(value.value)
            return values
    return None


def returns_data(field: GraphQLField) -> bool:
    named = get_named_type(field.type)
    if isinstance(named, GraphQLInterfaceType):
        return True
    return isinstance(named, GraphQLObjectType) and (
        "Node" in [i.name for i in named.interfaces] or named.name.endswith("Connection")
    )


def test_every_field_returning_data_declares_its_scopes() -> None:
    schema = sdl_schema()
    missing = []
    for type_name, graphql_type in schema.type_map.items():
        if not isinstance(graphql_type, GraphQLObjectType) or type_name.startswith("__"):
            continue
        if type_name.endswith(STRUCTURAL_SUFFIXES):
            continue  # reached only through a guarded field or mutation
        for field_name, field in graphql_type.fields.items():
            qualified = f"{type_name}.{field_name}"
            root = type_name in {"Query", "Mutation"}
            if qualified in PUBLIC or not (root or returns_data(field)):
                continue
            if required_scopes(field) is None:
                missing.append(qualified)
    assert missing == []


def _selection(field: GraphQLField) -> str:
    named = get_named_type(field.type)
    if is_leaf_type(named):
        return ""
    if named.name.endswith("Connection"):
        return " { totalCount }"
    return " { __typename }"


def _arguments(field: GraphQLField) -> str:
    given = {"key": '"NOPE"', "term": '"Nope"', "system": '"jira"', "externalId": '"NOPE-1"'}
    required = [
        name
        for name, arg in field.args.items()
        # Non-null without a default (the SDL's, on the argument's AST node).
        if is_non_null_type(arg.type)
        and not (arg.ast_node is not None and arg.ast_node.default_value is not None)
    ]
    return f"({', '.join(f'{n}: {given[n]}' for n in required)})" if required else ""


async def _node_ids(db: AsyncSession, caller_user: auth_models.User) -> dict[str, str]:
    db.add(
        models.AuditEvent(
            entity_type="Team", entity_id=1, action=models.AuditAction.UPDATE, changes={}
        )
    )
    await service_client(db)
    ids = {}
    for type_name, model in NODE_MODELS.items():
        pk = await db.scalar(select(model.id).order_by(model.id).limit(1))
        assert pk is not None, type_name
        ids[type_name] = encode_id(type_name, pk)
    ids["User"] = encode_id("User", caller_user.id)
    return ids


def _probe_query(schema: GraphQLSchema, ids: dict[str, str]) -> tuple[str, dict[str, str]]:
    """One query touching every guarded query field: roots directly, others through
    ``node(id:)`` of an object of their type. Returns it with each alias's scopes."""
    parts, expected = [], {}
    query_type = schema.query_type
    assert query_type is not None
    for name, field in query_type.fields.items():
        scopes = required_scopes(field)
        if scopes is None:
            continue
        alias = f"root_{name}"
        parts.append(f"{alias}: {name}{_arguments(field)}{_selection(field)}")
        expected[alias] = scopes[0]
    for type_name, pk in ids.items():
        graphql_type = schema.type_map[type_name]
        assert isinstance(graphql_type, GraphQLObjectType)
        for name, field in graphql_type.fields.items():
            scopes = required_scopes(field)
            if scopes is None:
                continue
            alias = f"{type_name}_{name}"
            parts.append(
                f'{alias}: node(id: "{pk}") {{ ... on {type_name} {{ {name}{_arguments(field)}'
                f"{_selection(field)} }} }}"
            )
            expected[alias] = scopes[0]
    return "{ " + "\n".join(parts) + " }", expected


@pytest.mark.parametrize("scope", [s.value for s in Scope if not s.value.endswith(":write")])
async def test_each_scope_is_refused_on_exactly_its_fields(
    caller: Any, db: AsyncSession, scope: str
) -> None:
    user = await user_with_roles(db, "admin")
    schema = sdl_schema()
    query, expected = _probe_query(schema, await _node_ids(db, user))
    await db.commit()

    def node_scope(alias: str) -> str | None:
        """The scope a node's own type needs: without it the node itself is refused."""
        if alias.startswith("root_"):
            return None
        return NODE_SCOPES.get(alias.split("_")[0], "portfolio:read")

    everyone = await caller(ALL_SCOPES, user=user)
    body = await everyone(query)
    assert "errors" not in body, body.get("errors")

    without = await caller([s for s in ALL_SCOPES if s != scope], user=user)
    body = await without(query)
    refused = {
        error["path"][0]
        for error in body.get("errors", [])
        if error["extensions"] == {"code": "FORBIDDEN", "requiredScopes": [scope]}
    }
    should = {
        alias for alias, needed in expected.items() if needed == scope or node_scope(alias) == scope
    }
    # kpis:ingest guards only a mutation and tokens:introspect only the OAuth
    # introspection endpoint; every read scope guards some fields.
    assert bool(should) == (scope not in {"kpis:ingest", "tokens:introspect"})
    assert refused == should
    assert len(body.get("errors", [])) == len(refused), body["errors"]
