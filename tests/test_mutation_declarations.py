"""Every mutation is findable by its GraphQL name: grep for ``updateInitiative`` lands on
the one method that defines it (``name="updateInitiative"`` on its decorator), not on a
factory call."""

from __future__ import annotations

import re
from pathlib import Path

from schema.build import schema

MUTATIONS = Path(__file__).resolve().parent.parent / "schema" / "mutations"
DECLARED = re.compile(
    r'@strawberry\.mutation\(\s*name="(\w+)",(?:[^@]*?)\)\s*async def (\w+)\(', re.S
)


def test_each_mutation_is_one_method_named_as_in_the_schema() -> None:
    mutation_type = schema._schema.mutation_type
    assert mutation_type is not None
    declared: dict[str, list[str]] = {}
    for path in sorted(MUTATIONS.glob("*.py")):
        for name, method in DECLARED.findall(path.read_text(encoding="utf-8")):
            declared.setdefault(name, []).append(f"{path.name}:{method}")
    # Once each, and nothing declared that the schema lacks.
    assert sorted(declared) == sorted(mutation_type.fields)
    assert all(len(places) == 1 for places in declared.values()), declared
    assert declared["updateInitiative"] == ["portfolio.py:update_initiative"]
