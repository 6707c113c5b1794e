"""The Relay ``Node`` interface and the helpers every node type shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry

from schema.ids import encode_id

ID_DESCRIPTION = "Opaque global ID; pass it to `node(id:)` to fetch this object again."


@strawberry.interface(description="An object with a global ID (Relay).")
class Node:
    id: strawberry.ID = strawberry.field(description=ID_DESCRIPTION)


def global_id(type_name: str) -> Any:
    """The ``id`` field of a node type whose root is a model with an integer ``id``."""

    def resolve(root: Any) -> strawberry.ID:
        return strawberry.ID(encode_id(type_name, root.id))

    return strawberry.field(
        resolver=resolve, description=ID_DESCRIPTION, metadata={"global_id": type_name}
    )


def of_model(model: type) -> Callable[..., bool]:
    """``is_type_of`` for a GraphQL type whose values are rows of ``model``."""

    def is_type_of(cls: type, obj: Any, info: Any) -> bool:
        return isinstance(obj, model)

    return classmethod(is_type_of)  # type: ignore[return-value]


VERSION = "Incremented by every change; pass it back as `expectedVersion` to update safely."
CREATED_AT = "When this was created."
UPDATED_AT = "When this was last changed."
