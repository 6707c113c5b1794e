"""schema.graphql is the contract: it must equal what the code defines, and describe everything."""

from __future__ import annotations

from pathlib import Path

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
)
from typer.testing import CliRunner

from api.cli import app
from schema.build import schema
from schema.sdl import render_sdl

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_committed_schema_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render_sdl(), (
        "schema.graphql is stale: run `portfolio export-schema` and commit the change"
    )


def test_export_schema_command_writes_the_sdl(tmp_path: Path) -> None:
    target = tmp_path / "out.graphql"
    result = CliRunner().invoke(app, ["export-schema", "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8") == render_sdl()


def test_every_type_field_argument_and_enum_value_is_described() -> None:
    missing: list[str] = []
    for name, graphql_type in schema._schema.type_map.items():
        if name.startswith("__") or name in {"String", "Int", "Float", "Boolean", "ID"}:
            continue
        if not graphql_type.description:
            missing.append(name)
        if isinstance(graphql_type, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in graphql_type.fields.items():
                if not field.description:
                    missing.append(f"{name}.{field_name}")
                missing += [
                    f"{name}.{field_name}({arg})"
                    for arg, definition in field.args.items()
                    if not definition.description
                ]
        elif isinstance(graphql_type, GraphQLInputObjectType):
            missing += [
                f"{name}.{field_name}"
                for field_name, field in graphql_type.fields.items()
                if not field.description
            ]
        elif isinstance(graphql_type, GraphQLEnumType):
            missing += [
                f"{name}.{value_name}"
                for value_name, value in graphql_type.values.items()
                if not value.description
            ]
    assert missing == []


def test_guarded_fields_show_their_scopes_in_the_sdl() -> None:
    sdl = render_sdl()
    assert 'estimatedCost: Decimal @requiresScopes(scopes: ["finance:read"])' in sdl
    assert "directive @requiresScopes(scopes: [String!]!) on FIELD_DEFINITION" in sdl


def test_every_setting_is_documented_in_docs_configuration() -> None:
    from domain.settings import ExternalIssuer, Settings

    page = (SCHEMA_FILE.parent / "docs" / "configuration.md").read_text(encoding="utf-8")
    special = {"database_url": "DATABASE_URL", "redis_url": "REDIS_URL"}
    missing = [
        variable
        for name in Settings.model_fields
        if f"| `{(variable := special.get(name, f'PORTFOLIO_{name.upper()}'))}` |" not in page
    ]
    # The keys of each PORTFOLIO_EXTERNAL_ISSUERS entry are named there too.
    missing += [
        f"external issuer {key}" for key in ExternalIssuer.model_fields if f"`{key}`" not in page
    ]
    assert missing == []
