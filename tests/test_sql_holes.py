"""SQL text kept with holes (``schema.compiled.holes``): split once, rendered per use."""

from __future__ import annotations

from schema.compiled.holes import (
    ALIAS,
    OBJECT,
    OBJECT_MARK,
    PARAMETER,
    PARAMETER_MARK,
    PARENT,
    SIZE,
    SIZE_MARK,
    Holes,
    split,
)


def test_each_kind_of_hole_is_rendered_from_its_value() -> None:
    sql = (
        f"SELECT n3.x, {OBJECT_MARK.format(1)}, {OBJECT_MARK.format(0)} FROM t AS n7 "
        f"JOIN latest_n8 ON n8.id = n7.id WHERE n7.parent = n3.id "
        f"AND n7.v > {PARAMETER_MARK.format(0)} LIMIT {SIZE_MARK + 1} -- {SIZE_MARK}"
    )
    holes = split(sql, parent=3, start=7, names=2, objects=True, size=True, parameters=True)
    assert holes is not None
    assert [(kind, number) for kind, number, _ in holes.holes] == [
        (PARENT, 0),
        (OBJECT, 1),
        (OBJECT, 0),
        (ALIAS, 0),
        (ALIAS, 1),
        (ALIAS, 1),
        (ALIAS, 0),
        (ALIAS, 0),
        (PARENT, 0),
        (ALIAS, 0),
        (PARAMETER, 0),
        (SIZE, 1),
        (SIZE, 0),
    ]
    rendered = holes.render(parent=1, start=4, objects=["'a'", "'b'"], size=5, parameters=["$2"])
    assert rendered == (
        "SELECT n1.x, 'b', 'a' FROM t AS n4 JOIN latest_n5 ON n5.id = n4.id "
        "WHERE n4.parent = n1.id AND n4.v > $2 LIMIT 6 -- 5"
    )
    # The values it was compiled with give back the text as it was.
    objects = [OBJECT_MARK.format(0), OBJECT_MARK.format(1)]
    parameters = [PARAMETER_MARK.format(0)]
    assert holes.render(3, 7, objects, SIZE_MARK, parameters) == sql
    assert holes.count(ALIAS) == 6 and holes.count(SIZE) == 2 and holes.count(PARAMETER) == 1


def test_a_text_without_holes_renders_as_it_is() -> None:
    sql = "SELECT 1 AS one, 'n3' AS quoted, name AS n FROM nodes"
    holes = split(sql, parent=3, start=4, names=1)
    assert holes == Holes(sql)
    assert holes.texts() == (sql,)
    assert holes.render(parent=9, start=10) == sql


def test_adjacent_holes_and_holes_at_either_end() -> None:
    sql = OBJECT_MARK.format(0) + OBJECT_MARK.format(1) + " || " + PARAMETER_MARK.format(2)
    holes = split(sql, objects=True, parameters=True)
    assert holes == Holes("", ((OBJECT, 0, ""), (OBJECT, 1, " || "), (PARAMETER, 2, "")))
    assert holes.render(objects=["'x'", "'y'"], parameters=["", "", "$1"]) == "'x''y' || $1"


def test_string_literals_and_what_was_not_asked_for_are_no_holes() -> None:
    marks = f"{OBJECT_MARK.format(0)} {PARAMETER_MARK.format(0)} {SIZE_MARK}"
    sql = f"SELECT 'it''s n2 {marks}', n2.a FROM t AS n2 WHERE n2.b = {marks}"
    holes = split(sql, start=2, names=1)
    assert holes is not None
    assert [(kind, number) for kind, number, _ in holes.holes] == [(ALIAS, 0)] * 3
    assert holes.render(start=5) == sql.replace("n2.", "n5.").replace("AS n2", "AS n5")


def test_a_text_naming_another_row_is_not_split() -> None:
    """Another row's alias is numbered per statement: the text could not be reused."""
    assert split("SELECT n2.a FROM t AS n2 WHERE n2.p = n1.id", start=2, names=1) is None
    assert split("SELECT n3.a FROM t AS n2", start=2, names=1) is None
    assert split("SELECT n3.a FROM t AS n2", parent=3, start=2, names=1) is not None


def test_parameters_are_listed_where_they_first_appear() -> None:
    """The statement's compiler numbers ``$n`` in the order they first appear."""
    sql = " ".join(PARAMETER_MARK.format(n) for n in (3, 1, 3, 0, 1))
    holes = split(sql, parameters=True)
    assert holes is not None
    assert holes.first(PARAMETER) == [3, 1, 0]
    assert holes.render(parameters=["$3", "$2", "", "$1"]) == "$1 $2 $1 $3 $2"
