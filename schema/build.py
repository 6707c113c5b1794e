"""Assemble the strawberry schema: one for development, one for production."""

from __future__ import annotations

from functools import cache
from typing import Any

import strawberry
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.extensions.directives import DirectivesExtension, DirectivesExtensionSync
from strawberry.schema.config import StrawberryConfig

from domain.settings import Settings
from schema.atomic import AtomicBatches, atomic
from schema.compiled.extension import CompiledQueries
from schema.federation import REPRESENTATION_SCALAR, FederatedQuery, Representation
from schema.limits import Documents, QueryLimits
from schema.mutations.bulk import BulkIngest
from schema.mutations.root import Mutation
from schema.query import NODE_CLASSES, Query
from schema.subscriptions.gate import SubscriptionGate
from schema.subscriptions.root import Subscription
from schema.types.scalars import SCALAR_OVERRIDES
from schema.validation import NoNulInStrings


def build_schema(
    *,
    production: bool = False,
    max_depth: int = 12,
    max_aliases: int = 30,
    max_tokens: int = 5000,
    federation: bool = False,
) -> strawberry.Schema:
    # The limiters' validation rules are built once: the validation cache is keyed by
    # the rule classes, so new classes per request would never hit it.
    rules: list[Any] = [
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules,
        NoNulInStrings,
    ]
    if production:
        rules.append(NoSchemaIntrospectionCustomRule)
    # Factories: a fresh extension per request (the cache of parsed and validated
    # documents is module-level, bounded by bytes: ``schema.limits.documents``).
    extensions: list[object] = [
        lambda: MaxTokensLimiter(max_token_count=max_tokens),
        lambda: AddValidationRules(rules),
        Documents,  # refuses oversized documents before parsing; charges parsing
        QueryLimits,
        SubscriptionGate,  # after the limits: raises their refusal of a subscription
        CompiledQueries,
        BulkIngest,  # after QueryLimits: a refused operation is not prevalidated
        AtomicBatches,  # innermost: its savepoint holds exactly the operation's work
    ]
    return PortfolioSchema(
        # The subgraph is the public schema plus `_service` and `_entities`.
        query=FederatedQuery if federation else Query,
        mutation=Mutation,
        subscription=Subscription,
        types=NODE_CLASSES,
        scalar_overrides={**SCALAR_OVERRIDES, Representation: REPRESENTATION_SCALAR},  # type: ignore[dict-item]
        config=StrawberryConfig(auto_camel_case=True, disable_field_suggestions=production),
        extensions=extensions,  # type: ignore[arg-type]
        directives=[atomic],
    )


class PortfolioSchema(strawberry.Schema):
    """strawberry's schema without its per-field directive middleware: our one directive
    (``@atomic``) belongs to the operation and is read once by ``AtomicBatches``, while the
    middleware, added for any declared directive, would wrap every resolved field."""

    def get_extensions(self, sync: bool = False) -> list[SchemaExtension]:
        return [
            extension
            for extension in super().get_extensions(sync)
            if not isinstance(extension, DirectivesExtension | DirectivesExtensionSync)
        ]


@cache
def _schema_for(
    production: bool, max_depth: int, max_aliases: int, max_tokens: int, federation: bool
) -> strawberry.Schema:
    return build_schema(
        production=production,
        max_depth=max_depth,
        max_aliases=max_aliases,
        max_tokens=max_tokens,
        federation=federation,
    )


def schema_for(settings: Settings) -> strawberry.Schema:
    """Production hides introspection and field suggestions; limits come from settings;
    ``PORTFOLIO_FEDERATION`` serves it as a federation subgraph."""
    return _schema_for(
        not settings.is_development,
        settings.max_query_depth,
        settings.max_aliases,
        settings.max_tokens,
        settings.federation,
    )


# The contract (schema.graphql) and tooling use the development variant.
schema = build_schema()
