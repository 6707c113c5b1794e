"""auth/ sits between the GraphQL layer and the domain (docs/architecture.md, "The
floors"): it knows nothing of GraphQL or of the application that assembles it, and the
domain knows nothing of it. Every import counts, those inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The composition root: the modules of api/ that assemble the app (may import anything).
APPLICATION = {"api.app", "api.cli", "api.embedded", "api.middleware", "api.logging"}


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def imports(package: str) -> dict[str, set[str]]:
    """Every module of ``package`` and the modules it imports, anywhere in its code."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[_module(path)] = names
    return found


def _under(name: str, *prefixes: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def test_auth_knows_nothing_of_graphql_nor_of_the_application() -> None:
    forbidden = {
        module: sorted(
            name for name in names if _under(name, "schema", "strawberry", "graphql", *APPLICATION)
        )
        for module, names in imports("auth").items()
    }
    assert {module: names for module, names in forbidden.items() if names} == {}


def test_the_domain_does_not_import_auth_nor_graphql() -> None:
    forbidden = {
        module: sorted(name for name in names if _under(name, "auth", "schema", "strawberry"))
        for module, names in imports("api").items()
        if module not in APPLICATION
    }
    assert {module: names for module, names in forbidden.items() if names} == {}
