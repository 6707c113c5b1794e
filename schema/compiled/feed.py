"""``changes``: a page of the change feed in one statement, built from the service's own
SQL pieces (``domain.services.feed``: the horizon, the order, the cursor), so the rule
that makes the feed resumable lives in one place.

The position after ``since``, the page size, its ``LIMIT`` and the types the caller may
read are computed per request from the arguments, as the resolver computes them (a
cursor or a size it refuses makes the plan decline the request: the resolver answers
with its error). The page's events are numbered in feed order; the first ``first`` are
the answer, one more tells ``hasMore``.

The answer depends on the snapshot's horizon, which moves when a transaction ends, with
no change notification: its SQL names ``feed.HORIZON_FUNCTION``, and such a plan's
answers are never kept in the response cache (``extension.Plan``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphql import FieldNode
from sqlalchemy import BigInteger, Select, Text, and_, any_, case, cast, func, select
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by

from domain.errors import DomainError
from domain.models import AuditAction, AuditEvent
from domain.services import feed
from domain.services.sync import REFS_FIELD
from schema.compiled import feed_text, jsontext, presented
from schema.compiled.selection import Invalid, Unsupported, response_key
from schema.compiled.special import external_refs
from schema.compiled.values import global_id_of, iso_timestamp
from schema.guards import AUDITED_TYPES, NODE_TYPES, type_scopes
from schema.types.audit import presenter
from schema.types.feed import ChangeEntityType, FeedChange, readable_types

if TYPE_CHECKING:
    from schema.compiled.compiler import Compiler

_LINKS = (AuditAction.LINK, AuditAction.UNLINK)


def _page_values(
    scopes: frozenset[str], since: str | None, types: list[Any] | None, first: int
) -> list[Any]:
    """The parameters of one request, as the resolver reads its arguments: the position
    after which to read, the page size, its LIMIT (none at all for an empty page) and
    the types asked that the caller may read."""
    feed.check_first(first)
    position = feed.START if since is None else feed.Position.decode(since)
    asked = None if types is None else [ChangeEntityType(getattr(t, "value", t)) for t in types]
    wanted = readable_types(scopes, asked)
    limit = first + 1 if first and wanted else 0
    return [position.transaction_id, position.event_id, first, limit, wanted]


def changes(c: Compiler, node: FieldNode, args: dict[str, Any]) -> Select[Any]:
    scopes = c.scopes
    for argument in ("since", "types", "first"):
        c.bound_use(node, (argument,))  # computed below, whatever its value
    try:
        planned = _page_values(scopes, args.get("since"), args.get("types"), args["first"])
    except DomainError:
        raise Invalid("feed arguments") from None  # the resolver answers its error

    def values(arguments: dict[str, Any]) -> list[Any]:
        return _page_values(
            scopes, arguments.get("since"), arguments.get("types"), arguments["first"]
        )

    types = (BigInteger, BigInteger, BigInteger, BigInteger, ARRAY(Text))
    parameters = c.computed(node, list(zip(planned, types, strict=True)), values)
    key = feed_text.key_of(c, node)
    if key is None:
        return _changes(c, node, parameters)
    return feed_text.written(c, key, parameters, types, lambda holes: _changes(c, node, holes))


def _changes(c: Compiler, node: FieldNode, parameters: list[Any]) -> Select[Any]:
    since_tx, since_id, first, limit, wanted = parameters
    since_tx, since_id = cast(since_tx, BigInteger), cast(since_id, BigInteger)
    first = cast(first, BigInteger)
    event = AuditEvent
    page = (
        select(
            event.transaction_id,
            event.id,
            event.entity_type,
            event.entity_id,
            event.action,
            event.occurred_at,
            event.changes,
            feed.object_column("key").label("key"),
            feed.object_column("archived_at").label("archived_at"),
            func.row_number().over(order_by=feed.order()).label("number"),
        )
        .where(
            event.entity_type == any_(cast(wanted, ARRAY(Text))),
            event.action.in_(feed.FEED_ACTIONS),
            feed.after(since_tx, since_id),
            feed.ready(),
        )
        .order_by(*feed.order())
        .limit(cast(limit, BigInteger))
        .subquery("feed_page")
    )
    served = page.c.number <= first

    def value(child: FieldNode) -> Any:
        name = child.name.value
        c.definition("FeedPage", child)
        if name == "events":
            return jsontext.json_array(_event(c, child, page), page.c.number, served)
        if name == "cursor":
            last = func.array_agg(
                aggregate_order_by(
                    feed.cursor_sql(page.c.transaction_id, page.c.id), page.c.number.desc()
                ),
                type_=ARRAY(Text),
            ).filter(served)[1]
            return jsontext.plain_string(func.coalesce(last, feed.cursor_sql(since_tx, since_id)))
        if name == "hasMore":
            return func.count() > first
        raise Unsupported(f"FeedPage.{name}")

    pairs = c.pairs("FeedPage", node, value)
    return select(jsontext.json_object(pairs)).select_from(page)


def _enum(column: Any, members: list[tuple[Any, str]]) -> Any:
    """A stored value as its GraphQL enum's name (a JSON string)."""
    return case(
        *((column == stored, jsontext.string_constant(shown)) for stored, shown in members),
        else_=jsontext.NULL,
    )


def _entity_type(page: Any) -> Any:
    return _enum(page.c.entity_type, [(t, ChangeEntityType(t).name) for t in feed.FEED_MODELS])


def _event(c: Compiler, node: FieldNode, page: Any) -> Any:
    """One ``FeedEvent`` of the page's row, field by field as ``schema.types.feed``."""

    def value(child: FieldNode) -> Any:
        name = child.name.value
        c.definition("FeedEvent", child)
        if name == "cursor":
            return jsontext.plain_string(feed.cursor_sql(page.c.transaction_id, page.c.id))
        if name == "change":
            return _enum(page.c.action, [(a, FeedChange(a.value).name) for a in feed.FEED_ACTIONS])
        if name == "entityType":
            return _entity_type(page)
        if name == "entityId":
            return global_id_of(page.c.entity_type, page.c.entity_id)
        if name == "key":
            return page.c.key
        if name == "occurredAt":
            return iso_timestamp(page.c.occurred_at)
        if name == "node":
            return case((page.c.archived_at.is_(None), _node(c, child, page)), else_=jsontext.NULL)
        if name == "tombstone":
            gone = and_(page.c.archived_at.is_not(None), page.c.key.is_not(None))
            return case((gone, _tombstone(c, child, page)), else_=jsontext.NULL)
        if name == "linkedId":
            return _linked_id(c, page)
        if name == "changes":
            return presented.changes(page.c.entity_type, page.c.changes)
        raise Unsupported(f"FeedEvent.{name}")

    return jsontext.json_object(c.pairs("FeedEvent", node, value))


def _node(c: Compiler, node: FieldNode, page: Any) -> Any:
    """The event's object now, as ``node(id:)`` finds it, per feed type."""
    whens = []
    depth, first_refusal = len(c.path), len(c.refusals)
    keys: dict[str, set[str]] = {}  # type -> the response keys selected on it
    for type_name, model in feed.FEED_MODELS.items():
        if not {NODE_TYPES[type_name][1].value} <= c.scopes:
            continue  # never in the page: the caller may not read the type
        fields = c.walk.fields(type_name, node.selection_set)
        keys[type_name] = {response_key(f) for f in fields}
        alias = c.alias(model)
        found = select(c.object(type_name, alias, node) if fields else jsontext.constant("{}"))
        found = c.rows(found.select_from(alias), alias).where(alias.id == page.c.entity_id)
        whens.append((page.c.entity_type == type_name, found.scalar_subquery()))
    for refusal in c.refusals[first_refusal:]:
        # The answer does not say an object's type: a refused field's key must be its
        # type's alone (``errors.finish`` finds it by key).
        type_name, child = refusal.steps[depth]  # type: ignore[misc]
        if any(response_key(child) in k for t, k in keys.items() if t != type_name):
            raise Unsupported("a refused key selected on several feed types")
    return case(*whens, else_=jsontext.NULL) if whens else jsontext.NULL


def _tombstone(c: Compiler, node: FieldNode, page: Any) -> Any:
    def value(child: FieldNode) -> Any:
        name = child.name.value
        c.definition("Tombstone", child)
        if name == "id":
            return global_id_of(page.c.entity_type, page.c.entity_id)
        if name == "type":
            return _entity_type(page)
        if name == "key":
            return page.c.key
        if name == "archivedAt":
            return iso_timestamp(page.c.archived_at)
        if name == "externalRefs":
            return _tombstone_refs(c, child, page)
        raise Unsupported(f"Tombstone.{name}")

    return jsontext.json_object(c.pairs("Tombstone", node, value))


def _tombstone_refs(c: Compiler, node: FieldNode, page: Any) -> Any:
    """The references of the types whose ``externalRefs`` the caller may read (by that
    field's own declaration, as the resolver asks), else ``[]``."""
    tables = presenter(c.schema)
    readable = [
        name for name in feed.FEED_MODELS if tables.table(name)[REFS_FIELD].scopes <= c.scopes
    ]
    if not readable:
        return jsontext.constant("[]")
    refs = external_refs(c, node, page.c.entity_type, page.c.entity_id)
    return case((page.c.entity_type.in_(readable), refs), else_=jsontext.constant("[]"))


def _linked_id(c: Compiler, page: Any) -> Any:
    """For a link or unlink, the other end's global ID when the caller may read its type."""
    readable = [t for t in (*NODE_TYPES, *AUDITED_TYPES) if type_scopes(t) <= c.scopes]
    target = page.c.changes["target"]
    target_type = target["type"].astext
    linked = and_(
        page.c.action.in_(_LINKS),
        func.jsonb_typeof(target) == "object",
        target_type.in_(readable),
    )
    target_id = cast(target["id"].astext, BigInteger)
    return case((linked, global_id_of(target_type, target_id)), else_=jsontext.NULL)
