"""What each field of a connection's ``pageInfo`` reads, as the resolvers answer it:
one reading for both ways a connection's SQL is written (``connections`` builds it,
``page_text`` writes it as text)."""

from __future__ import annotations

from dataclasses import dataclass

from graphql import FieldNode

from schema.compiled.selection import Unsupported, response_key


@dataclass(frozen=True)
class PageInfoField:
    key: str  # its response key
    # hasNextPage / hasPreviousPage: "next" / "previous", and whether that is the side
    # of travel (the page's extra row tells whether more follow there).
    side: str | None
    travelled: bool
    # startCursor / endCursor: whether it is the page's first row in the order of
    # travel (the start, or the end for `last`); else its last row.
    first_row: bool


def page_info_fields(node: FieldNode, backwards: bool) -> list[PageInfoField]:
    """The fields selected in ``pageInfo`` (``Unsupported`` for a fragment)."""
    travelled = "previous" if backwards else "next"
    fields = []
    for child in node.selection_set.selections if node.selection_set else ():
        if not isinstance(child, FieldNode):
            raise Unsupported("fragment in pageInfo")
        name = child.name.value
        if name in {"hasNextPage", "hasPreviousPage"}:
            side = "next" if name == "hasNextPage" else "previous"
            fields.append(PageInfoField(response_key(child), side, side == travelled, False))
        elif name in {"startCursor", "endCursor"}:
            first = (name == "startCursor") != backwards
            fields.append(PageInfoField(response_key(child), None, False, first))
        else:
            raise Unsupported(f"pageInfo.{name}")
    return fields
