"""SQL text kept with holes: compiled once, written again into other statements.

Three kinds of SQL are kept as text and written into later statements: a field's
subtree (``subtrees``), the parts of a connection or reference (``page_text``) and the
change feed's statement (``feed_text``). Some words of such a text differ from one
statement to the next: the row aliases (``n12``: numbered per statement), a
connection's objects and page size, the feed's parameters (``$n``: numbered per
statement). A text is split once at those words (``split``) into fixed pieces and typed
holes, and ``Holes.render`` fills each hole with the value given for its kind.

What stands in a hole's place when the text is compiled: an alias as it is, an object
or a parameter as a marker (``OBJECT_MARK``, ``PARAMETER_MARK``), the page size as
``SIZE_MARK``. String literals are skipped: a value written into the statement may
read like any of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Final

# The kinds of hole, by what fills one (``Holes.render``'s argument of the same name).
# Plain ints, not an enum: a tuple of ints and strings is left alone by the garbage
# collector once seen, one holding an enum member is walked by every collection (tens
# of thousands of holes are kept).
Kind = int
PARENT: Final = 0  # the parent row's alias: ``n{parent}``
ALIAS: Final = 1  # a row alias of the text's own, numbered from ``start``: ``n{start + number}``
OBJECT: Final = 2  # an object's JSON text: ``objects[number]``
SIZE: Final = 3  # the page size plus ``number`` (0; 1 for a page's extra row): ``size + number``
PARAMETER: Final = 4  # a parameter as the statement's compiler writes it: ``parameters[number]``

OBJECT_MARK = "__portfolio_object_{}__"
PARAMETER_MARK = "__portfolio_parameter_{}__"
# A page size no request can ask (the cap is far below): its digits are the hole of
# the size, the next number that of the extra row a page with ``pageInfo`` reads (which
# SQLAlchemy writes as the number itself).
SIZE_MARK = 1_000_000_007

# A string literal (skipped), else a row alias (``n12``, also inside a lateral's name
# ``latest_n12``). (The ``n`` is matched before the character behind it is looked at,
# and a literal's run of ordinary characters at once: the pattern is tried at every
# position.)
_LITERAL_OR_ALIAS = r"'[^']*(?:''[^']*)*'|n(?<![A-Za-z0-9$]n)(?P<alias>[0-9]+)(?![A-Za-z0-9])"
_OBJECT = r"|__portfolio_object_(?P<object>[0-9]+)__"
_PARAMETER = r"|__portfolio_parameter_(?P<parameter>[0-9]+)__"
_SIZE = rf"|(?<![0-9])(?P<size>{SIZE_MARK}|{SIZE_MARK + 1})(?![0-9])"


@dataclass(frozen=True, slots=True)
class Holes:
    """A text split at its holes: ``head``, then each hole (its kind, its number) with
    the fixed text after it."""

    head: str
    holes: tuple[tuple[Kind, int, str], ...] = ()

    def render(
        self,
        parent: int | None = None,
        start: int = 0,
        objects: Sequence[str] = (),
        size: int = 0,
        parameters: Sequence[str] = (),
    ) -> str:
        """The text with each hole filled by the value of its kind."""
        out = [self.head]
        append = out.append
        for kind, number, text in self.holes:
            if kind == ALIAS:
                append(f"n{start + number}")
            elif kind == PARENT:
                append(f"n{parent}")
            elif kind == OBJECT:
                append(objects[number])
            elif kind == SIZE:
                append(str(size + number))
            else:
                append(parameters[number])
            append(text)
        return "".join(out)

    def first(self, kind: Kind) -> list[int]:
        """The numbers of the holes of ``kind``, each once, in the order they appear."""
        return list(dict.fromkeys(number for k, number, _ in self.holes if k == kind))

    def count(self, kind: Kind) -> int:
        return sum(1 for k, _, _ in self.holes if k == kind)

    def texts(self) -> tuple[str, ...]:
        """Its fixed pieces (for the bytes a cache of it holds)."""
        return (self.head, *(text for _, _, text in self.holes))


def split(
    sql: str,
    *,
    parent: int | None = None,
    start: int = 0,
    names: int = 0,
    objects: bool = False,
    size: bool = False,
    parameters: bool = False,
) -> Holes | None:
    """``sql`` split at its holes: the alias ``n{parent}``, its own aliases ``n{start}``
    to ``n{start + names - 1}`` and, if asked for, the markers of objects, the page
    size and parameters. None if it names any other row alias: that row is numbered
    per statement, and not one of the text's own."""
    head: str | None = None  # the text before the first hole
    holes: list[tuple[Kind, int, str]] = []
    # The hole found last, and where it ends: its text (up to the next) is not known yet.
    kind, number = PARENT, 0
    at = 0
    stop = start + names  # past its own aliases
    for found in _pattern(objects, size, parameters).finditer(sql):
        group = found.lastgroup
        if group is None:
            continue  # a string literal
        if head is None:
            head = sql[at : found.start()]
        else:
            holes.append((kind, number, sql[at : found.start()]))
        number = int(found[group])
        if group == "alias":
            if number == parent:
                kind, number = PARENT, 0
            elif start <= number < stop:
                kind, number = ALIAS, number - start
            else:
                return None
        elif group == "object":
            kind = OBJECT
        elif group == "size":
            kind, number = SIZE, number - SIZE_MARK
        else:
            kind = PARAMETER
        at = found.end()
    if head is None:
        return Holes(sql)
    holes.append((kind, number, sql[at:]))
    return Holes(head, tuple(holes))


@cache
def _pattern(objects: bool, size: bool, parameters: bool) -> re.Pattern[str]:
    return re.compile(
        _LITERAL_OR_ALIAS
        + (_OBJECT if objects else "")
        + (_SIZE if size else "")
        + (_PARAMETER if parameters else "")
    )
