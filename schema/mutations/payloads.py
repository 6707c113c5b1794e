"""Payload types: the entity (when there is one) and the user errors."""

from __future__ import annotations

from typing import Any

import strawberry

from schema.mutations.common import UserError


def entity_payload(type_name: str, node: Any, field_name: str) -> Any:
    """``<Type>Payload { <field>: <Type>, userErrors: [UserError!]! }``."""
    namespace = {
        "__annotations__": {field_name: node | None, "user_errors": list[UserError]},
        field_name: strawberry.field(
            description=f"The {type_name} after the change; on CONFLICT, as currently stored; "
            "otherwise null when refused."
        ),
        "user_errors": strawberry.field(description="Why it was refused; empty on success."),
    }
    cls = type(f"{type_name}Payload", (), namespace)
    return strawberry.type(cls, description=f"Result of a mutation of a {type_name}.")


def link_payload(name: str, fields: dict[str, tuple[str, Any]]) -> Any:
    """``<Name>Payload`` with both linked entities and the user errors."""
    annotations: dict[str, Any] = {"user_errors": list[UserError]}
    namespace: dict[str, Any] = {
        "user_errors": strawberry.field(description="Why it was refused; empty on success.")
    }
    for field_name, (type_name, node) in fields.items():
        annotations[field_name] = node | None
        namespace[field_name] = strawberry.field(description=f"The {type_name}.")
    namespace["__annotations__"] = annotations
    cls = type(f"{name}Payload", (), namespace)
    return strawberry.type(cls, description="Result of linking or unlinking two entities.")
