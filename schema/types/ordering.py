"""Order inputs (`field` + `direction`), generated from the service's orderings."""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry

from schema.types.enums import OrderDirection

# One wording per sortable field name, shared by every entity that offers it.
ORDER_FIELD_DESCRIPTIONS = {
    "KEY": "By key.",
    "NAME": "By name.",
    "TITLE": "By title.",
    "TERM": "By term.",
    "STATUS": "By status, in lifecycle order.",
    "SEVERITY": "By severity, BLOCKER first when ascending.",
    "TARGET_START": "By target start date; undated items count as earliest.",
    "TARGET_END": "By target end date; undated items count as earliest.",
    "DUE_DATE": "By due date; undated items count as latest.",
    "RICE_SCORE": "By RICE score; unscored items count as lowest.",
    "WSJF_SCORE": "By WSJF score; unscored items count as lowest.",
    "IT_IMPORTANCE": "By importance to IT, CRITICAL first when ascending; unrated last.",
    "PRODUCT_IMPORTANCE": "By importance to product, CRITICAL first when ascending; unrated last.",
    "OBSERVED_AT": "By observation time.",
    "OCCURRED_AT": "By time of the change.",
    "EMAIL": "By e-mail address.",
    "CREATED_AT": "By creation time.",
    "UPDATED_AT": "By time of the last change.",
}


def order_input(type_name: str, orderings: dict[str, Any], default: str) -> type:
    """Build ``<Type>OrderField`` and ``<Type>Order`` for the given orderings."""
    field_enum = Enum(f"{type_name}OrderField", {name: name for name in orderings})  # type: ignore[misc]
    strawberry.enum(field_enum, description=f"Fields {type_name} lists can be sorted by.")
    for value in field_enum.__strawberry_definition__.values:  # type: ignore[attr-defined]
        value.description = ORDER_FIELD_DESCRIPTIONS[value.name]
    namespace = {
        "__annotations__": {"field": field_enum, "direction": OrderDirection},
        "field": strawberry.field(description="What to sort by."),
        "direction": strawberry.field(
            default=OrderDirection.ASC, description="Ascending (default) or descending."
        ),
        "orderings": orderings,
        "default": default,
    }
    cls = type(f"{type_name}Order", (), namespace)
    return strawberry.input(cls, description=f"Sort order of a {type_name} list; id breaks ties.")
