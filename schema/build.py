"""Assemble the strawberry schema."""

from __future__ import annotations

import strawberry
from strawberry.schema.config import StrawberryConfig

from schema.compiled.extension import CompiledQueries
from schema.mutations.root import Mutation
from schema.query import NODE_CLASSES, Query


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        types=NODE_CLASSES,
        config=StrawberryConfig(auto_camel_case=True),
        extensions=[CompiledQueries],
    )


schema = build_schema()
