"""Validation rules the schema adds to GraphQL's own (``schema/build.py``)."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError, StringValueNode, ValidationRule


class NoNulInStrings(ValidationRule):
    """A string literal of the document may not hold a NUL character (``"\\u0000"``),
    which PostgreSQL refuses in text. Values sent as JSON (variables) are refused when
    the body is decoded (``schema.http.decode_json``); this rule covers the document."""

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        if "\x00" in node.value:
            self.report_error(
                GraphQLError("String literals may not contain the NUL character (U+0000).", node)
            )
