"""The floors of docs/architecture.md, kept by a check: each package imports only from
the floors below it, and no two parts of the code import each other. Every import
counts, the ones inside functions and under TYPE_CHECKING included: a cycle hidden in
a function is still a cycle a reader has to untangle."""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Top to bottom. A package may import itself and the packages listed for it.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "api": frozenset({"api", "schema", "auth", "domain", "migrations", "dashboard"}),
    # The page for people is a client of the public API (/graphql, /oauth/*): it serves
    # its files and knows nothing of the code behind them.
    "dashboard": frozenset({"dashboard"}),
    "schema": frozenset({"schema", "auth", "domain"}),
    "auth": frozenset({"auth", "domain"}),
    "migrations": frozenset({"migrations", "auth", "domain"}),  # every model, auth's too
    "domain": frozenset({"domain"}),
}
PACKAGES = tuple(MAY_IMPORT)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, text: str | None = None) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import in the file (or in ``text`` read as
    that file), relative ones resolved."""
    module = _module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    source = path.read_text() if text is None else text
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield node.lineno, target
            # `from package import module` imports the module too.
            for alias in node.names:
                yield node.lineno, f"{target}.{alias.name}"


def _sources() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def _part(module: str) -> str:
    """The unit cycles are looked for between: a subpackage (``schema.compiled``), or
    a module directly in a top-level package (``schema.view``)."""
    return ".".join(module.split(".")[:2])


def _known(module: str) -> bool:
    path = ROOT.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_every_package_imports_only_from_the_floors_below_it() -> None:
    crossings = []
    for path in _sources():
        package = path.relative_to(ROOT).parts[0]
        for line, target in _imports(path):
            top = target.split(".")[0]
            if top in PACKAGES and top not in MAY_IMPORT[package]:
                crossings.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert crossings == []


# The libraries of GraphQL: only the GraphQL floor speaks it (auth and the domain know
# nothing of it; the application reaches it through schema/).
GRAPHQL_LIBRARIES = frozenset({"strawberry", "graphql"})


def test_only_schema_imports_graphql_libraries() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for path in _sources()
        if path.relative_to(ROOT).parts[0] != "schema"
        for line, target in _imports(path)
        if target.split(".")[0] in GRAPHQL_LIBRARIES
    ]
    assert found == []


def _part_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in _sources():
        source = _part(_module_name(path))
        for _, target in _imports(path):
            if target.split(".")[0] in PACKAGES and _known(target):
                destination = _part(target)
                if destination != source and "." in destination:
                    graph[source].add(destination)
    return graph


def _cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A shortest path start -> ... -> start, if there is one."""
    paths: dict[str, list[str]] = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    return [*paths[node], start]
                if nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    following.append(nxt)
        frontier = following
    return None


def test_no_two_parts_of_the_code_import_each_other() -> None:
    graph = _part_graph()
    cycles = {
        " -> ".join(cycle)
        for start in sorted(graph)
        if (cycle := _cycle_through(graph, start)) is not None
    }
    assert sorted(cycles) == []


@pytest.mark.parametrize(
    ("source", "forbidden"),
    [
        ("domain/services/reads.py", "from schema.view import PortfolioGraphQL\n"),
        ("auth/tokens.py", "def later() -> None:\n    import api.app\n"),
        ("schema/context.py", "if True:\n    from api import cli\n"),
        ("domain/models/__init__.py", "from ..metrics import Metrics\nfrom .. import seed\n"),
        (
            "domain/errors.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import auth\n",
        ),
    ],
)
def test_the_check_sees_upward_imports_wherever_they_hide(source: str, forbidden: str) -> None:
    path = ROOT / source
    package = path.relative_to(ROOT).parts[0]
    before = {target for _, target in _imports(path)}
    added = {target for _, target in _imports(path, path.read_text() + "\n" + forbidden)}
    new = added - before
    assert new, f"nothing new seen in {forbidden!r}"
    if "domain/models" in source:  # relative imports, resolved within the domain: allowed
        assert new >= {"domain.metrics", "domain.seed"}
        return
    assert any(t.split(".")[0] not in MAY_IMPORT[package] for t in new)
