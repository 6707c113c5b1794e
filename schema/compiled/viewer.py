"""``viewer``: who is calling. A plan is keyed by the caller's scopes, not by who the
caller is, so the user, the client and whether the caller authenticated are bound per
request from the principal (``Compiler.principal``), as ``identity.viewer_of`` reads
them; the effective scopes are the key's, written into the statement."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from graphql import FieldNode
from sqlalchemy import BigInteger, Boolean, Select, cast, select

from auth import models as auth_models
from schema.compiled import jsontext
from schema.compiled.selection import Unsupported

if TYPE_CHECKING:
    from schema.compiled.compiler import Compiler


def viewer(c: Compiler, node: FieldNode) -> Select[Any]:
    def value(child: FieldNode) -> Any:
        name = child.name.value
        c.definition("Viewer", child)  # its scopes (none today) are checked all the same
        if name == "scopes":
            return jsontext.constant(orjson.dumps(sorted(c.scopes)).decode())
        if name == "authenticated":
            return cast(c.principal("authenticated", Boolean), Boolean)
        if name == "user":
            return _row(c, child, "User", auth_models.User, "user_id")
        if name == "client":
            return _row(c, child, "OAuthClient", auth_models.OAuthClient, "client_pk")
        raise Unsupported(f"Viewer.{name}")

    return select(jsontext.json_object(c.pairs("Viewer", node, value)))


def _row(c: Compiler, node: FieldNode, type_name: str, model: Any, attribute: str) -> Any:
    """The principal's user or client by primary key (``session.get``: archived or not),
    null when there is none."""
    alias = c.alias(model)
    pk = cast(c.principal(attribute, BigInteger), BigInteger)
    statement = select(c.object(type_name, alias, node)).select_from(alias)
    return c.rows(statement, alias).where(alias.id == pk).scalar_subquery()
